"""HTTP, and all of it: timeouts, size caps, retries, validators, politeness.

No other module talks to the network or retries anything. `Fetcher.get`
either returns a whole `Response` (2xx, or 304 to a conditional request) or
raises a `FetchError` that says what happened and what to do.

Retries (tenacity): connection errors, timeouts, bodies cut short, and the
statuses 408/429/500/502/503/504/522/524, with exponential backoff and
jitter, or the server's ``Retry-After`` (capped) when it sends one; never
beyond `attempts` tries nor past `retry_budget` seconds for one URL.

Politeness: at most `per_host` requests at a time to one host, and hosts
with a configured delay (36kr) get one request at a time, spaced by it.

Every request has a total deadline, and URLs from feed content may not reach
non-public addresses: both are enforced at the socket (`ingest.connect`).
Transport failures that no retry can mend (a name that does not resolve, a
redirect loop, a scheme that is not HTTP) fail at once, with what to do.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import urlsplit

import httpcore
import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    wait_exponential_jitter,
)

from ingest import __version__, sniff
from ingest.connect import AddressPolicy, GuardedBackend, RefusedAddress, UnresolvedHost, deadline
from ingest.errors import BlockedError, FetchError, HTTPStatusError, RefusedAddressError, TooLargeError
from ingest.models import Response, Validators
from ingest.workqueue import KeyedLocks

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 522, 524})
DRAIN_LIMIT = 64 * 1024  # an unused body longer than this (as sent) costs a new connection instead
USER_AGENT = f"ingest/{__version__} (feed archiver; +https://github.com/ingest-archive/ingest)"


@dataclass(frozen=True, slots=True)
class Policy:
    timeout: float = 30.0
    attempts: int = 4
    backoff: float = 1.0
    retry_budget: float = 120.0
    max_retry_after: float = 60.0
    per_host: int = 2
    host_delays: Mapping[str, float] = field(default_factory=dict)
    user_agent: str = USER_AGENT
    deadline: float = 120.0  # seconds for one whole request: connect, headers and body
    addresses: AddressPolicy = field(default_factory=AddressPolicy)


class HTTP(Protocol):
    """What the stages after the fetcher ask of it: a `Fetcher`, or a rebuild's kept sources."""

    def get(self, url: str, *, max_bytes: int, validators: Validators | None = None,
            headers: Mapping[str, str] | None = None) -> Response: ...

    def post_json(self, url: str, payload: object, *, max_bytes: int,
                  headers: Mapping[str, str] | None = None) -> Response: ...


class _Retryable(Exception):
    """A failed attempt worth another try; carries the server's Retry-After."""

    def __init__(self, error: FetchError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class Fetcher:
    """Thread-safe GETs through one injected httpx.Client."""

    def __init__(self, client: httpx.Client, policy: Policy,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._policy = policy
        self._sleep = sleep
        self._monotonic = monotonic
        # A host's requests at a time: one when its requests are spaced, else per_host.
        self._slots = KeyedLocks(lambda host: threading.BoundedSemaphore(
            1 if policy.host_delays.get(host) else policy.per_host))
        self._next_at: dict[str, float] = {}

    def get(self, url: str, *, max_bytes: int, validators: Validators | None = None,
            headers: Mapping[str, str] | None = None) -> Response:
        """GET `url`, retrying what is transient; 304 only when `validators` were sent."""
        request_headers = dict(headers or {})
        if validators and validators.etag:
            request_headers["If-None-Match"] = validators.etag
        if validators and validators.last_modified:
            request_headers["If-Modified-Since"] = validators.last_modified
        return self._request(url, request_headers, max_bytes, None)

    def post_json(self, url: str, payload: object, *, max_bytes: int,
                  headers: Mapping[str, str] | None = None) -> Response:
        """POST a JSON body (an API call), with the same retries and politeness as GET."""
        return self._request(url, dict(headers or {}), max_bytes, payload)

    def _request(self, url: str, headers: dict[str, str], max_bytes: int,
                 payload: object) -> Response:
        started = self._monotonic()

        def give_up(state: RetryCallState) -> bool:
            spent = self._monotonic() - started + state.upcoming_sleep
            return state.attempt_number >= self._policy.attempts or spent > self._policy.retry_budget

        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
            stop=give_up,
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=lambda rs: log.info("retrying %s: %s", url,
                                             rs.outcome.exception() if rs.outcome else ""),
            reraise=True,
        )
        try:
            return retrying(self._attempt, url, headers, max_bytes, payload)
        except _Retryable as exc:
            raise exc.error from None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self._policy.max_retry_after)
        return float(wait_exponential_jitter(multiplier=self._policy.backoff, max=30,
                                             jitter=self._policy.backoff)(state))

    def _attempt(self, url: str, headers: dict[str, str], max_bytes: int,
                 payload: object) -> Response:
        host = urlsplit(url).hostname or ""
        with self._host_slot(host):
            started = time.monotonic()  # real time, as connect.deadline counts it
            try:
                return self._exchange(url, headers, max_bytes, payload)
            except httpx.TimeoutException as exc:
                if time.monotonic() - started >= self._policy.deadline - 0.1:
                    # Bytes kept coming, too slowly to finish: another try would do the same.
                    raise FetchError(url, f"no complete answer within the deadline of "
                                          f"{self._policy.deadline:g} s (http.deadline); the server "
                                          "answers too slowly, tried again next run") from None
                raise _Retryable(FetchError(url, f"timed out ({exc or type(exc).__name__}); the server "
                                                 "is slow or unreachable, tried again next run")) from None
            except UnresolvedHost as exc:
                raise FetchError(url, str(exc)) from None
            except RefusedAddress as exc:
                raise RefusedAddressError(url, str(exc)) from None
            except httpx.UnsupportedProtocol:
                raise FetchError(url, "not an http(s) URL; ingest fetches nothing else") from None
            except httpx.TransportError as exc:
                raise _Retryable(FetchError(url, f"could not connect: {exc or type(exc).__name__}; check the "
                                                 "host name and the network, tried again next run")) from None
            except httpx.TooManyRedirects:
                raise FetchError(url, "the redirects go round in circles (or past 5 hops); check the URL "
                                      "in a browser") from None
            except (httpx.InvalidURL, httpx.HTTPError, ValueError) as exc:
                raise FetchError(url, f"cannot request this URL: {exc}") from None

    def _exchange(self, url: str, headers: dict[str, str], max_bytes: int,
                  payload: object) -> Response:
        method = "GET" if payload is None else "POST"
        with deadline(self._policy.deadline), self._client.stream(
                method, url, headers=headers, json=payload, timeout=self._policy.timeout) as r:
            if r.status_code == 304 or r.status_code >= 400:  # a body we do not use
                _drain(r)  # the host's next request reuses the connection
            if r.status_code in RETRY_STATUSES:
                raise _Retryable(HTTPStatusError(url, r.status_code, "the server is failing or busy; "
                                                 "gave up after retrying, tried again next run"),
                                 _retry_after(r.headers.get("Retry-After")))
            if r.status_code == 304:
                return Response(str(r.url), 304, "", b"", _validators(r.headers))
            if r.status_code >= 400:
                raise HTTPStatusError(url, r.status_code, r.reason_phrase or "refused")
            declared = _declared_length(r)
            if declared is not None and declared > max_bytes and "Content-Encoding" not in r.headers:
                raise TooLargeError(url, f"body of {declared} bytes exceeds the cap of {max_bytes}")
            body = b"".join(_read_capped(r, url, max_bytes))
        content_type = r.headers.get("Content-Type", "")
        if "html" in content_type or sniff.looks_like_html(body):
            marker = sniff.challenge_marker(body)
            if marker:
                raise BlockedError(url, f"a bot wall answered (marker {marker!r}): ingest never solves "
                                        "challenges; nothing archived, tried again next run",
                                   wall=f"a bot wall ({marker!r})")
        return Response(str(r.url), r.status_code, content_type, body, _validators(r.headers))

    @contextmanager
    def _host_slot(self, host: str) -> Iterator[None]:
        delay = self._policy.host_delays.get(host, 0.0)
        with self._slots(host):
            if delay:
                wait = self._next_at.get(host, 0.0) - self._monotonic()
                if wait > 0:
                    self._sleep(wait)
            try:
                yield
            finally:
                if delay:
                    self._next_at[host] = self._monotonic() + delay


def _drain(r: httpx.Response) -> None:
    """Read to its end a response whose body is not used (a 304's none, an error's page)
    when it is short, as sent, never decoded: closed unread, httpx closes its connection,
    and every feed or image of the host answering so would open a new one."""
    if r.is_stream_consumed:  # read already (a response made in memory)
        return
    declared = _declared_length(r)
    if r.status_code == 304 or (declared is not None and declared <= DRAIN_LIMIT):
        for _ in r.iter_raw():
            pass


def _declared_length(r: httpx.Response) -> int | None:
    """The body's length as sent, when the server says it."""
    declared = r.headers.get("Content-Length", "")
    return int(declared) if declared.isdigit() else None


def _read_capped(r: httpx.Response, url: str, max_bytes: int) -> Iterator[bytes]:
    size = 0
    for chunk in r.iter_bytes():  # decoded bytes: a gzip bomb hits the cap too
        size += len(chunk)
        if size > max_bytes:
            raise TooLargeError(url, f"body exceeds the cap of {max_bytes} bytes")
        yield chunk


def _validators(headers: httpx.Headers) -> Validators:
    return Validators(etag=headers.get("ETag"), last_modified=headers.get("Last-Modified"))


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport on ingest's network backend (see `ingest.connect`)."""

    def __init__(self, policy: Policy, limits: httpx.Limits, tls: ssl.SSLContext) -> None:
        super().__init__(verify=tls, limits=limits)
        # httpx does not take a network backend; its pool is rebuilt with the same settings.
        self._pool = httpcore.ConnectionPool(
            ssl_context=tls, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, network_backend=GuardedBackend(policy.addresses))


class _ProxiedTransport(httpx.HTTPTransport):
    """Through a proxy of the environment: the proxy resolves and connects, so only a
    literal address in the URL can be checked here, and `http.timeout` bounds each read."""

    def __init__(self, policy: Policy, proxy: str, limits: httpx.Limits, tls: ssl.SSLContext) -> None:
        super().__init__(verify=tls, limits=limits, proxy=proxy)
        self._addresses = policy.addresses

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._addresses.check_literal(request.url.host)
        return super().handle_request(request)


def _environment_proxies(policy: Policy, limits: httpx.Limits,
                         tls: ssl.SSLContext) -> dict[str, httpx.BaseTransport | None]:
    """HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY, mounted as httpx mounts them when it is
    not given a transport of its own (as it is here)."""
    found = urllib.request.getproxies()
    if any(host.strip() == "*" for host in found.get("no", "").split(",")):
        return {}
    mounts: dict[str, httpx.BaseTransport | None] = {}
    for scheme in ("http", "https"):
        proxy = found.get(scheme) or found.get("all")
        if proxy:
            mounts[f"{scheme}://"] = _ProxiedTransport(policy, proxy, limits, tls)
    for host in filter(None, (h.strip() for h in found.get("no", "").split(","))):
        mounts[f"all://{host}" if host == "localhost" or host[0].isdigit() else f"all://*{host}"] = None
    return mounts if any(mounts.values()) else {}


def make_client(policy: Policy) -> httpx.Client:
    """The production client: HTTP/1.1, redirects followed, our User-Agent, and the
    environment's proxies."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
    # One TLS context for every transport: each costs ~25 ms to load the CA bundle.
    tls = httpx.create_ssl_context()
    return httpx.Client(
        headers={"User-Agent": policy.user_agent, "Accept-Encoding": "gzip, deflate"},
        follow_redirects=True,
        max_redirects=5,
        timeout=policy.timeout,
        transport=_GuardedTransport(policy, limits, tls),
        mounts=_environment_proxies(policy, limits, tls),
    )
