"""Hostile servers over real sockets: a header trickle, redirect loops, an entity
bomb, dates out of range, raw-text elements, and feed content that points at
private addresses. One run over all of them, as cron would start it."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import feedgen
from tests.conftest import Project, front_matter
from tests.loopback import Loopback


class RawServer:
    """A TCP listener that runs `serve(conn)` per connection and logs every accept."""

    def __init__(self, host: str, serve: object = None) -> None:
        self.socket = socket.create_server((host, 0))
        self.host, self.port = self.socket.getsockname()[:2]
        self.accepted: list[float] = []
        self._serve = serve
        self._stop = threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def _loop(self) -> None:
        self.socket.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.socket.accept()
            except OSError:
                continue
            self.accepted.append(time.monotonic())
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            if callable(self._serve):
                self._serve(conn, self._stop)

    def close(self) -> None:
        self._stop.set()
        self.socket.close()


def trickle(conn: socket.socket, stop: threading.Event) -> None:
    """`HTTP/1.1 200 OK`, then one header byte a second, forever."""
    try:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not stop.wait(1.0):
            conn.sendall(b"X")
    except OSError:
        pass


@pytest.fixture
def trickler() -> Iterator[RawServer]:
    server = RawServer("127.0.0.1", trickle)
    yield server
    server.close()


@pytest.fixture
def private() -> Iterator[RawServer]:
    """A listener on 127.0.0.2: nothing from feed content may reach it."""
    server = RawServer("127.0.0.2")
    yield server
    server.close()


BOMB = ('<?xml version="1.0"?><!-- <!DOCTYPE decoy> first, to shield the real one -->'
        '<!DOCTYPE rss [<!ENTITY a "' + "a" * 1000 + '">'
        + "".join(f'<!ENTITY {chr(98 + i)} "' + f"&{chr(97 + i)};" * 10 + '">' for i in range(9))
        + ']><rss version="2.0"><channel><title>t</title><item><title>&j;</title>'
          "<link>http://site.example/bomb</link><description><![CDATA[" + "<p>炸弹之后的正文。</p>" * 20
        + "]]></description></item></channel></rss>").encode()


def rss(*items: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
            + "".join(items) + "</channel></rss>").encode()


def item(n: int, date: str, body: str, link: str = "") -> str:
    link = link or f"http://site.example/{n}"  # never fetched: the feed holds the whole article
    return (f"<item><title>条目{n}</title><link>{link}</link>"
            f"<guid>{link}</guid><pubDate>{date}</pubDate>"
            f"<description><![CDATA[{body}]]></description></item>")


GOOD_DATE = "Wed, 21 Feb 2024 05:47:03 GMT"
BODY = "<p>一段足够长的正文，讲的是城市、科技和人，足以独立成篇，不必再去原网页取全文。</p>" * 3


def test_one_run_over_seven_hostile_feeds(project: Project, server: Loopback, trickler: RawServer,
                                          private: RawServer) -> None:
    server.route("/good", feedgen.feed(3))
    server.route("/bomb", BOMB)
    server.route("/loop", status=302, headers={"Location": "/loop"})
    server.route("/dates", rss(item(1, "Fri, 31 Dec 9999 23:59:59 -1200", BODY),
                               item(2, GOOD_DATE, BODY), item(3, "Mon, 01 Jan 0001 00:00:00 +0100", BODY)))
    raw = "<p>before</p><xmp><b>shown as is</b></xmp><p>middle</p><plaintext><p>after plaintext</p>"
    server.route("/raw", rss(item(4, GOOD_DATE, BODY + raw)))
    server.route("/private", rss(
        f"<item><title>内网</title><link>{private.url('/article')}</link><pubDate>{GOOD_DATE}</pubDate>"
        f"<description><![CDATA[<p>摘要。</p><img src=\"{private.url('/a.png')}\">]]></description></item>"))
    feeds = {"good": "/good", "bomb": "/bomb", "trickle": None, "loop": "/loop", "dates": "/dates",
             "raw": "/raw", "private": "/private"}
    # The good feed's images are on 36kr's CDN: not asked for, there is no network here.
    project.configure([{"name": name, "url": server.url(path) if path else trickler.url("/feed"),
                        "images": name != "good"} for name, path in feeds.items()],
                      images=True, full_content="auto", http={"timeout": 3, "retry_budget": 10})

    # The run's own peak memory (bench.peak): a child's ru_maxrss starts from its parent's
    # at fork, and this test session's parent holds a great deal by now.
    peak = project.root / "peak-mb"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "bench.peak", str(peak), "ingest", "--config",
                           str(project.config), "run"], capture_output=True, text=True, timeout=180,
                          check=False, cwd=Path(__file__).resolve().parents[1])
    took = time.monotonic() - started
    peak_mb = float(peak.read_text(encoding="ascii"))

    assert done.returncode == 1, done.stdout + done.stderr
    assert took < 90 and peak_mb < 400, (took, peak_mb)
    assert "Traceback" not in done.stdout + done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line and not line[0].isspace()}
    for name in ("trickle", "loop"):
        assert "error" in lines[name], done.stdout
    assert trickler.url("/feed") in lines["trickle"] and "deadline" in lines["trickle"]
    assert "circles" in lines["loop"] and server.url("/loop") in lines["loop"]
    for name in ("good", "bomb", "dates", "raw", "private"):
        assert lines[name].split()[1] == "ok", done.stdout

    posts = project.posts()
    categories = [front_matter(text)[0]["categories"][0] for text in posts.values()]
    assert sorted(categories) == sorted(["good"] * 3 + ["dates"] * 3 + ["bomb", "raw", "private"])
    assert not any("aaaaaaaa" in text for text in posts.values())
    raw = next(text for text in posts.values() if "before" in text)
    assert not re.search(r"<(plaintext|xmp)", raw, flags=re.I)
    assert "&lt;b&gt;shown as is&lt;/b&gt;" in raw and "middle" in raw and "after plaintext" in raw
    assert private.accepted == []  # not the page, not the image
    inside = next(text for text in posts.values() if "内网" in text)
    assert "摘要" in inside and private.url("/a.png") in inside
    assert "non-public address" in done.stdout


def test_a_deadline_ends_a_header_trickle(project: Project, trickler: RawServer) -> None:
    project.configure([{"name": "slow", "url": trickler.url("/feed")}],
                      http={"timeout": 2.5, "deadline": 4, "attempts": 1})  # a byte every second
    started = time.monotonic()
    code, out = project.run()
    assert code == 1 and time.monotonic() - started < 10
    assert "slow" in out and "deadline of 4" in out and trickler.url("/feed") in out


def test_a_private_host_can_be_allowed(project: Project, server: Loopback, private: RawServer) -> None:
    server.route("/private", rss(item(5, GOOD_DATE, f"<p>摘要。</p><img src=\"{private.url('/a.png')}\">",
                                      link=private.url("/article"))))
    project.configure([{"name": "lan", "url": server.url("/private")}], images=True,
                      http={"allow_private": ["127.0.0.2/32"], "attempts": 1})
    project.run()
    assert private.accepted  # allowed: asked for (and here, answered with nothing)


def test_transport_errors_are_one_line_under_quiet(project: Project, server: Loopback) -> None:
    server.route("/loop", status=302, headers={"Location": "/loop"})
    server.route("/ftp", status=302, headers={"Location": "ftp://files.example/feed"})
    project.configure([{"name": "loop", "url": server.url("/loop")},
                       {"name": "ftp", "url": server.url("/ftp")}])
    code, out = project.run("run", "--quiet")
    assert code == 1 and "Traceback" not in out
    assert sorted(line.split()[0] for line in out.splitlines()) == ["ftp", "loop", "total:"]
    assert "circles" in out and "not an http(s) URL" in out and Path(project.config).is_file()


def test_the_environments_proxy_is_used_and_literal_private_addresses_stay_refused(
        project: Project, server: Loopback, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.base)  # the loopback server answers as a proxy would
    server.route("http://feeds.example/feed", rss(
        f"<item><title>内网</title><link>http://10.0.0.5/article</link><pubDate>{GOOD_DATE}</pubDate>"
        "<description><![CDATA[<p>摘要。</p>]]></description></item>"))
    project.configure([{"name": "proxied", "url": "http://feeds.example/feed"}], full_content="auto")
    code, out = project.run()
    assert code == 0 and len(project.posts()) == 1, out
    assert [r.path for r in server.requests] == ["http://feeds.example/feed"]  # not the 10.0.0.5 page
    assert "is 10.0.0.5, a non-public address" in out
