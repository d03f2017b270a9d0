"""The fault matrix: transient faults survived within a run, persistent ones isolated."""

from __future__ import annotations

import time

import pytest

import ingest.archiver
import ingest.article
from ingest.models import Entry
from tests.conftest import DATA, Project
from tests.loopback import Fault, Loopback

FEED = (DATA / "feeds" / "36kr-official.xml").read_bytes()


@pytest.mark.parametrize("faults", [
    [Fault(status=503), Fault(status=503)],
    [Fault(status=429, retry_after="1")],
    [Fault(truncate=200)],
    [Fault(reset=True)],
    [Fault(delay=1.5)],  # stalls past the 0.5 s timeout once
    [Fault(status=500), Fault(reset=True), Fault(truncate=10)],
], ids=["503-twice", "429-retry-after", "cut-short", "reset", "stall", "mixed"])
def test_transient_faults_are_survived_in_the_same_run(project: Project, server: Loopback,
                                                       faults: list[Fault]) -> None:
    server.route("/feed", FEED, faults=list(faults))
    project.configure([{"name": "36kr", "url": server.url("/feed")}],
                      http={"timeout": 0.5, "attempts": 4, "backoff": 0.05})
    code, out = project.run()
    assert code == 0, out
    assert len(project.posts()) == 2
    assert len(server.hits("/feed")) == len(faults) + 1


def test_retry_after_is_waited_for(project: Project, server: Loopback) -> None:
    server.route("/feed", FEED, faults=[Fault(status=429, retry_after="1")])
    project.configure([{"name": "36kr", "url": server.url("/feed")}])
    assert project.run()[0] == 0
    first, second = server.hits("/feed")
    assert second.at - first.at >= 0.95


def test_retries_stay_within_the_time_budget(project: Project, server: Loopback) -> None:
    server.route("/feed", FEED, faults=[Fault(status=503, retry_after="1")] * 50)
    project.configure([{"name": "36kr", "url": server.url("/feed")}],
                      http={"attempts": 10, "retry_budget": 2.5, "backoff": 0.05})
    started = time.monotonic()
    code, out = project.run()
    assert code == 1 and "HTTP 503" in out and "tried again next run" in out
    assert "refused" not in out  # it was retried, not refused: the line says that alone
    assert time.monotonic() - started < 4
    assert len(server.hits("/feed")) == 3  # 0 s, 1 s, 2 s: a third wait would pass 2.5 s


MALFORMED = b"<?xml version='1.0'?><rss version='2.0'><channel><item><title>cut"


@pytest.mark.parametrize(("route", "expected"), [
    ({"status": 404, "body": b"no"}, "HTTP 404: Not Found"),
    ({"status": 410, "body": b"gone"}, "HTTP 410: Gone"),
    ({"status": 451, "body": b"no"}, "HTTP 451: Unavailable For Legal Reasons"),
    ({"body": (DATA / "feeds" / "captcha.html").read_bytes(), "content_type": "text/html"},
     "bot wall answered (marker 'TTGCaptcha'): ingest never solves challenges"),
    ({"body": (DATA / "feeds" / "security-check.html").read_bytes()}, "marker '正在进行安全检测'"),
    ({"body": MALFORMED}, "malformed XML"),
    ({"body": (DATA / "feeds" / "moved.html").read_bytes(), "content_type": "text/html"},
     "an HTML page titled 'Document Moved', not a feed"),
    ({"body": b'{"data": []}', "content_type": "application/json"}, "neither RSS nor Atom"),
], ids=["404", "410", "451", "captcha", "security-check", "malformed", "html", "json"])
def test_persistent_failures_fail_alone(project: Project, server: Loopback, route: dict[str, object],
                                        expected: str) -> None:
    server.route("/good", FEED)
    server.route("/bad", **route)  # type: ignore[arg-type]
    project.configure([{"name": "bad", "url": server.url("/bad")},
                       {"name": "good", "url": server.url("/good")}])
    code, out = project.run()
    assert code == 1
    bad, good = out.splitlines()[:2]
    assert bad.startswith("bad") and "error" in bad and expected in bad and server.url("/bad") in bad
    if "HTTP 4" in expected and "451" not in expected:
        assert ("fix its url in config.yaml" in bad) or ("remove it from config.yaml" in bad)
    if "451" in expected:  # a status with no advice of its own still says what happens next
        assert "the server refused the request, tried again next run" in bad
    assert "2 new" in good and len(project.posts()) == 2


def test_dns_failure_fails_alone(project: Project, server: Loopback) -> None:
    server.route("/good", FEED)
    project.configure([{"name": "nowhere", "url": "http://feeds.nowhere.invalid/feed"},
                       {"name": "good", "url": server.url("/good")}])
    code, out = project.run()
    assert code == 1
    assert "cannot resolve the host name 'feeds.nowhere.invalid'" in out and "check the URL" in out
    assert "http://feeds.nowhere.invalid/feed" in out and len(project.posts()) == 2


def test_a_feed_failing_run_after_run_backs_off_but_is_never_dropped(project: Project,
                                                                     server: Loopback) -> None:
    server.route("/feed", b"", status=500)
    project.configure([{"name": "flaky", "url": server.url("/feed")}], http={"attempts": 1})
    for _ in range(3):
        assert project.run()[0] == 1
        project.clock.advance(minutes=5)
    hits = len(server.hits("/feed"))
    code, out = project.run()  # 5 minutes after the 3rd failure: waits 30
    assert code == 1 and "failed 3 runs in a row" in out and "--force" in out
    assert len(server.hits("/feed")) == hits
    project.clock.advance(minutes=30)
    server.route("/feed", FEED)
    assert project.run()[0] == 0 and len(server.hits("/feed")) == hits + 1
    assert len(project.posts()) == 2


def test_force_polls_a_feed_that_is_backing_off(project: Project, server: Loopback) -> None:
    server.route("/feed", b"", status=500)
    project.configure([{"name": "flaky", "url": server.url("/feed")}], http={"attempts": 1})
    for _ in range(3):
        project.run()
    server.route("/feed", FEED)
    assert project.run()[0] == 1
    assert project.run("run", "--force")[0] == 0 and len(project.posts()) == 2


def test_a_failed_entry_is_retried_next_run(project: Project, server: Loopback,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    server.route("/feed", FEED, etag='"v1"')
    project.configure([{"name": "36kr", "url": server.url("/feed")}])
    real = ingest.article.build_article

    def flaky(entry: Entry, *args: object, **kwargs: object) -> object:  # build_article, loosely
        if entry.key.endswith("0001"):
            raise ingest.errors.ExtractError("page could not be read")
        return real(entry, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("ingest.archiver.build_article", flaky)
    code, out = project.run()
    assert code == 1 and "! 城市里的自动驾驶小巴" in out and "page could not be read" in out
    assert len(project.posts()) == 1
    monkeypatch.undo()
    code, out = project.run()  # validators were not kept: the feed is fetched in full again
    assert code == 0 and "1 new, 0 updated, 1 unchanged" in out
    assert "if-none-match" not in server.hits("/feed")[-1].headers
    assert len(project.posts()) == 2
