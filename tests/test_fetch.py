from __future__ import annotations

import gzip
from collections.abc import Callable

import httpx
import pytest

from ingest.errors import BlockedError, FetchError, HTTPStatusError, TooLargeError
from ingest.fetch import Fetcher, Policy
from ingest.models import Validators
from tests.conftest import DATA

URL = "https://feeds.example/feed"
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Answers from a script of responses and records requests and sleeps."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.now = 0.0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def fetcher(self, **policy: object) -> Fetcher:
        client = httpx.Client(transport=httpx.MockTransport(self.handle))
        settings = {"attempts": 4, "retry_budget": 120.0, **policy}
        return Fetcher(client, Policy(**settings), sleep=self.sleep,  # type: ignore[arg-type]
                       monotonic=lambda: self.now)


def ok(body: bytes = b"<rss/>", **headers: str) -> httpx.Response:
    return httpx.Response(200, content=body, headers=headers)


def ok_with(headers: dict[str, str], body: bytes = b"<rss/>") -> httpx.Response:
    return httpx.Response(200, content=body, headers=headers)


def test_conditional_get_sends_validators_and_reports_304() -> None:
    rec = Recorder(httpx.Response(304))
    response = rec.fetcher().get(URL, max_bytes=1000,
                                 validators=Validators('"v1"', "Wed, 21 Feb 2024 05:47:03 GMT"))
    assert response.not_modified
    assert rec.requests[0].headers["If-None-Match"] == '"v1"'
    assert rec.requests[0].headers["If-Modified-Since"] == "Wed, 21 Feb 2024 05:47:03 GMT"


def test_new_validators_are_returned() -> None:
    rec = Recorder(ok_with({"ETag": '"v2"', "Last-Modified": "Thu, 22 Feb 2024 00:00:00 GMT"}))
    response = rec.fetcher().get(URL, max_bytes=1000)
    assert response.validators == Validators('"v2"', "Thu, 22 Feb 2024 00:00:00 GMT")
    assert "If-None-Match" not in rec.requests[0].headers


def test_503_twice_then_200_is_retried_with_backoff() -> None:
    rec = Recorder(httpx.Response(503), httpx.Response(503), ok(b"<rss>ok</rss>"))
    assert rec.fetcher().get(URL, max_bytes=1000).body == b"<rss>ok</rss>"
    assert len(rec.requests) == 3 and len(rec.sleeps) == 2 and all(s > 0 for s in rec.sleeps)


def test_retry_after_is_honoured_and_capped() -> None:
    rec = Recorder(httpx.Response(429, headers={"Retry-After": "7"}),
                   httpx.Response(503, headers={"Retry-After": "3600"}), ok())
    rec.fetcher(max_retry_after=30).get(URL, max_bytes=1000)
    assert rec.sleeps == [7.0, 30.0]


def test_connection_errors_are_retried() -> None:
    rec = Recorder(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                   httpx.RemoteProtocolError("peer closed connection without sending complete body"),
                   ok())
    assert rec.fetcher().get(URL, max_bytes=1000).status == 200
    assert len(rec.requests) == 4


def test_attempts_exhausted_raise_the_last_error() -> None:
    rec = Recorder(httpx.Response(502))
    with pytest.raises(HTTPStatusError, match="HTTP 502") as caught:
        rec.fetcher(attempts=3).get(URL, max_bytes=1000)
    assert caught.value.status == 502 and len(rec.requests) == 3


def test_retries_stop_before_the_time_budget() -> None:
    rec = Recorder(httpx.Response(503, headers={"Retry-After": "40"}))
    with pytest.raises(HTTPStatusError):
        rec.fetcher(attempts=10, retry_budget=100, max_retry_after=60).get(URL, max_bytes=1000)
    assert sum(rec.sleeps) <= 100 and len(rec.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_client_errors_are_not_retried(status: int) -> None:
    rec = Recorder(httpx.Response(status))
    with pytest.raises(HTTPStatusError, match=f"HTTP {status}"):
        rec.fetcher().get(URL, max_bytes=1000)
    assert len(rec.requests) == 1


def test_size_cap_on_declared_and_streamed_bodies() -> None:
    with pytest.raises(TooLargeError):
        Recorder(ok(b"x" * 2000)).fetcher().get(URL, max_bytes=1000)


def test_gzip_bomb_hits_the_cap_after_decoding() -> None:
    bomb = gzip.compress(b"\0" * 5_000_000)
    rec = Recorder(ok_with({"Content-Encoding": "gzip"}, bomb))
    with pytest.raises(TooLargeError):
        rec.fetcher().get(URL, max_bytes=1_000_000)


@pytest.mark.parametrize("page", ["captcha.html", "security-check.html"])
def test_bot_walls_are_blocked_not_returned(page: str) -> None:
    rec = Recorder(ok_with({"Content-Type": "text/html"}, (DATA / "feeds" / page).read_bytes()))
    with pytest.raises(BlockedError, match="bot wall"):
        rec.fetcher().get(URL, max_bytes=100_000)
    assert len(rec.requests) == 1


def test_hosts_with_a_delay_are_spaced() -> None:
    rec = Recorder(ok())
    fetcher = rec.fetcher(host_delays={"36kr.com": 1.5})
    for n in range(3):
        fetcher.get(f"https://36kr.com/p/{n}", max_bytes=1000)
    assert rec.sleeps == [1.5, 1.5]
    fetcher.get("https://other.example/", max_bytes=1000)
    assert rec.sleeps == [1.5, 1.5]


def test_fetch_error_names_the_url() -> None:
    rec = Recorder(httpx.ConnectError("[Errno -2] Name or service not known"))
    with pytest.raises(FetchError, match=r"Name or service not known.*feeds\.example"):
        rec.fetcher(attempts=2).get(URL, max_bytes=1000)
