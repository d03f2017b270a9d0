from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest import pipeline
from ingest.models import Entry, KnownPost, Outcome
from ingest.pipeline import decide, triage
from ingest.workqueue import Offload
from tests.conftest import DATA, SHARED, Project, front_matter, needs_shared
from tests.loopback import Loopback

FEEDS = DATA / "feeds"
WHEN = datetime(2024, 1, 1, tzinfo=UTC)


def serve(server: Loopback, name: str, **route: object) -> str:
    server.route(f"/{name}", (FEEDS / name).read_bytes(), **route)
    return server.url(f"/{name}")


def entry(source_hash: str = "h1") -> Entry:
    return Entry("k", "t", None, WHEN, None, "<p>x</p>", None, source_hash)


def known(feed: str = "a", source_hash: str = "h1") -> KnownPost:
    return KnownPost("k", feed, "2024/01/01/k/index.md", source_hash, WHEN, WHEN)


def test_decide() -> None:
    assert decide(entry(), None, "a") is Outcome.NEW
    assert decide(entry(), known(), "a") is Outcome.UNCHANGED
    assert decide(entry("h2"), known(), "a") is Outcome.UPDATED
    assert decide(entry("h2"), known(feed="b"), "a") is Outcome.UNCHANGED  # b's post: b updates it


def test_triage_of_a_feeds_entries() -> None:
    new, changed, same, twice = (Entry(k, k, None, WHEN, None, "<p>x</p>", None, h)
                                 for k, h in (("n", "h1"), ("k", "h2"), ("s", "h1"), ("n", "h9")))
    posts = {"k": known(), "s": KnownPost("s", "a", "2024/01/01/s/index.md", "h1", WHEN, WHEN)}
    results, work = triage([new, changed, same, twice], posts, "a", {})
    assert [(e.key, p) for e, p in work] == [("n", None), ("k", posts["k"])]
    assert [(r.key, r.outcome, r.owner) for r in results] == [("s", Outcome.UNCHANGED, None),
                                                              ("n", Outcome.UNCHANGED, "a")]
    # Claimed by another feed in this run: that feed owns it; only new entries with only_new.
    results, work = triage([new, changed], posts, "a", {"n": "b"}, only_new=True)
    assert work == [] and [(r.key, r.owner) for r in results] == [("n", "b"), ("k", None)]
    # Another feed's post: it is that feed's to update.
    results, work = triage([changed], {"k": known(feed="b")}, "a", {})
    assert work == [] and results[0].owner == "b"


@needs_shared
def test_golden_sample_is_reproduced_exactly(project: Project, server: Loopback) -> None:
    server.route("/feed.xml", (SHARED / "golden" / "feed.xml").read_bytes())
    project.configure([{"name": "36krai", "url": server.url("/feed.xml")}])
    code, _ = project.run()
    assert code == 0
    ((path, text),) = project.posts().items()
    assert path == "2024/02/21/2657851737276677/index.md"
    expected = (SHARED / "golden" / "expected.md").read_text(encoding="utf-8")
    got_meta, got_body = front_matter(text)
    want_meta, want_body = front_matter(expected)
    assert got_body == want_body
    assert list(got_meta)[: len(want_meta)] == list(want_meta)
    assert {k: got_meta[k] for k in want_meta} == want_meta
    assert got_meta["canonicalURL"] == "https://36kr.com/p/2657851737276677"


def test_rerun_is_a_no_op_with_conditional_get(project: Project, server: Loopback) -> None:
    url = serve(server, "36kr-official.xml", etag='"v1"')
    project.configure([{"name": "36kr", "url": url}])
    assert project.run()[0] == 0
    before = project.snapshot()
    assert len(before) == 2
    code, out = project.run()
    assert code == 0 and "not-modified" in out
    assert server.hits("/36kr-official.xml")[-1].headers["if-none-match"] == '"v1"'
    assert project.snapshot() == before


def test_feeds_answering_304_share_one_connection(project: Project, server: Loopback) -> None:
    # A 304 closed unread closed its connection: each feed of a host paid a new one.
    for name in "abcd":
        server.route(f"/{name}", (DATA / "feeds" / "36kr-official.xml").read_bytes(), etag=f'"{name}"')
    project.configure([{"name": name, "url": server.url(f"/{name}")} for name in "abcd"],
                      http={"per_host": 1, "workers": 1})
    assert project.run(client=server.client())[0] == 0
    first = len(server.requests)
    assert project.run(client=server.client())[1].count("not-modified") == 4
    assert len({r.port for r in server.requests[first:]}) == 1


def test_feeds_answering_404_share_one_connection(project: Project, server: Loopback) -> None:
    project.configure([{"name": name, "url": server.url(f"/gone-{name}")} for name in "abcd"],
                      http={"per_host": 1, "workers": 1})
    code, out = project.run(client=server.client())
    assert code == 1 and out.count("HTTP 404") == 4
    assert len({r.port for r in server.requests}) == 1


def test_losing_the_state_duplicates_nothing_and_changes_no_byte(project: Project,
                                                                  server: Loopback) -> None:
    urls = [serve(server, name) for name in ("36kr-official.xml", "rss-gpt.xml", "newsflash.xml",
                                              "atom.xml", "rss092-latin1.xml")]
    project.configure([{"name": f"f{i}", "url": u} for i, u in enumerate(urls)])
    assert project.run()[0] == 0
    before = project.snapshot()
    shutil.rmtree(project.state_dir)
    project.clock.advance(days=3)  # undated entries must not move to a new date
    code, out = project.run()
    assert code == 0 and "0 new, 0 updated" in out.splitlines()[-1]
    assert project.snapshot() == before


def test_changed_entry_rewrites_the_same_post(project: Project, server: Loopback) -> None:
    body = (FEEDS / "36kr-official.xml").read_text(encoding="utf-8")
    route = server.route("/feed", body)
    project.configure([{"name": "36kr", "url": server.url("/feed")}])
    project.run()
    first = project.posts()
    route.body = body.replace("早上七点", "早上六点半").encode()
    project.clock.advance(hours=5)
    code, out = project.run()
    assert code == 0 and "0 new, 1 updated, 1 unchanged" in out
    after = project.posts()
    assert after.keys() == first.keys()
    path = "2026/03/26/3001000000000001/index.md"
    meta, body_text = front_matter(after[path])
    assert "早上六点半" in body_text
    assert meta["date"] == "Thu, 26 Mar 2026 02:00:00 GMT"
    assert meta["lastmod"] == "Wed, 25 Nov 2026 14:00:00 GMT"


def test_one_failing_feed_fails_alone(project: Project, server: Loopback) -> None:
    good = serve(server, "36kr-official.xml")
    captcha = serve(server, "captcha.html", content_type="text/html")
    project.configure([{"name": "gone", "url": server.url("/missing")},
                       {"name": "walled", "url": captcha},
                       {"name": "36kr", "url": good}])
    code, out = project.run()
    assert code == 1
    assert len(project.posts()) == 2
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "HTTP 404" in lines["gone"] and server.url("/missing") in lines["gone"]
    assert "bot wall" in lines["walled"] and captcha in lines["walled"]
    assert "2 new" in lines["36kr"]


def test_same_article_in_two_feeds_is_archived_once_by_the_first(project: Project,
                                                                 server: Loopback) -> None:
    a = serve(server, "36kr-official.xml")
    server.route("/copy.xml", (FEEDS / "36kr-official.xml").read_bytes())
    project.configure([{"name": "first", "url": a}, {"name": "second", "url": server.url("/copy.xml")}])
    project.run()
    posts = project.posts()
    assert len(posts) == 2
    assert all(front_matter(t)[0]["categories"] == ["first"] for t in posts.values())


def test_feed_shapes_archive_one_post_per_item(project: Project, server: Loopback) -> None:
    names = ["36kr-official.xml", "rss-gpt.xml", "newsflash.xml", "official-2016.xml",
             "entity-escaped.xml", "double-cdata.xml", "empty.xml", "atom.xml", "rss1.xml",
             "rss092-latin1.xml", "latin1-undeclared.xml", "gb2312.xml", "markdown-traps.xml"]
    project.configure([{"name": n.removesuffix(".xml"), "url": serve(server, n)} for n in names])
    code, out = project.run()
    assert code == 0, out
    counts = {line.split()[0]: line for line in out.splitlines()[:-1]}
    assert "2 new" in counts["36kr-official"] and "3 new" in counts["rss-gpt"]
    assert "0 new" in counts["empty"] and "3 new" in counts["atom"]
    assert len(project.posts()) == 2 + 3 + 2 + 1 + 1 + 1 + 0 + 3 + 1 + 1 + 1 + 1 + 1


@pytest.mark.parametrize("feed", ["36kr-official.xml", "rss-gpt.xml", "markdown-traps.xml"])
def test_sample_feeds_give_their_expected_posts(project: Project, server: Loopback, feed: str) -> None:
    project.configure([{"name": "sample", "url": serve(server, feed)}], summary="auto")
    project.run()
    expected_dir = DATA / "expected" / feed.removesuffix(".xml")
    if os.environ.get("UPDATE_EXPECTED"):  # after an intended change: review the diff, commit
        shutil.rmtree(expected_dir, ignore_errors=True)
        shutil.copytree(project.archive, expected_dir)
    expected = {p.relative_to(expected_dir).as_posix(): p.read_text(encoding="utf-8")
                for p in sorted(expected_dir.rglob("index.md"))}
    assert project.posts() == expected


def atom(*entries: tuple[str, str, str]) -> bytes:
    """An Atom feed of (id, title, body) entries."""
    return ('<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>tag:x,2024:feed</id>'
            + "".join(f"<entry><id>{i}</id><title>{t}</title><link href='https://x.example/{n}'/>"
                      f"<updated>2024-02-21T05:47:03Z</updated><content type='html'>&lt;p&gt;{b}&lt;/p&gt;"
                      "</content></entry>" for n, (i, t, b) in enumerate(entries))
            + "</feed>").encode()


def test_one_identity_twice_in_a_feed_the_first_is_the_post_and_reruns_change_nothing(
        project: Project, server: Loopback) -> None:
    server.route("/feed", atom(("tag:x,2024:1", "first", "一" * 80), ("tag:x,2024:1", "second", "二" * 80)))
    project.configure([{"name": "a", "url": server.url("/feed")}])
    code, out = project.run()
    assert code == 0 and "1 new, 0 updated, 1 unchanged" in out
    assert "= 1 entry repeating an earlier entry's identity: the first is the post" in out
    before = project.snapshot()
    assert front_matter(next(iter(project.posts().values())))[0]["title"] == "first"
    for _ in range(2):
        project.clock.advance(hours=1)
        code, out = project.run("run", "--force")
        assert code == 0 and "0 new, 0 updated, 2 unchanged" in out
    assert project.snapshot() == before


def test_an_article_in_several_feeds_is_one_post_and_the_others_say_so(project: Project,
                                                                       server: Loopback) -> None:
    shared = ("tag:x,2024:1", "共享", "三" * 80)
    server.route("/a", atom(shared))
    server.route("/b", atom(shared, ("tag:x,2024:2", "only b", "四" * 80)))
    project.configure([{"name": "a", "url": server.url("/a")}, {"name": "b", "url": server.url("/b")}])
    code, out = project.run("run", "--report", str(project.root / "r.json"))
    assert code == 0 and len(project.posts()) == 2
    owner = front_matter(next(t for t in project.posts().values() if "共享" in t))[0]["categories"][0]
    other = "b" if owner == "a" else "a"
    assert f"= 1 entry already archived from feed {owner}" in out
    report = json.loads((project.root / "r.json").read_text())
    assert {f["name"]: f["already_archived"] for f in report["feeds"]} == {owner: {}, other: {owner: 1}}
    code, out = project.run("run", "--force")
    assert f"= 1 entry already archived from feed {owner}" in out


class _WarmOffload(Offload):
    """An Offload whose worker process is up before the first call, counting the calls it takes."""

    pooled = 0

    def __init__(self, processes: int) -> None:
        super().__init__(processes)
        deadline = time.monotonic() + 60
        while processes and super()._ready() is None and time.monotonic() < deadline:
            time.sleep(0.05)

    def _ready(self) -> ProcessPoolExecutor | None:
        pool = super()._ready()
        _WarmOffload.pooled += pool is not None
        return pool


def test_a_run_reading_in_a_worker_process_writes_the_same_bytes(tmp_path: Path, server: Loopback,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    names = ["36kr-official.xml", "rss-gpt.xml", "newsflash.xml", "official-2016.xml", "atom.xml",
             "rss1.xml", "rss092-latin1.xml", "latin1-undeclared.xml", "gb2312.xml", "markdown-traps.xml",
             "hostile.xml", "captcha.html", "entity-escaped.xml", "double-cdata.xml"]
    # Twice each: the second copy's entries are the first's, as in two feeds of one site.
    feeds = [{"name": f"{n.removesuffix('.xml')}-{copy}", "url": f"{serve(server, n)}?{copy}"}
             for copy in (1, 2) for n in names]
    assert len(feeds) >= pipeline.OFFLOAD_FEEDS
    monkeypatch.setattr(pipeline, "spare_cores", lambda: 1)
    monkeypatch.setattr(pipeline, "Offload", _WarmOffload)
    archives = {}
    for way, from_feeds in (("here", 1_000), ("worker", pipeline.OFFLOAD_FEEDS)):
        monkeypatch.setattr(pipeline, "OFFLOAD_FEEDS", from_feeds)
        _WarmOffload.pooled = 0
        project = Project(tmp_path / way)
        project.root.mkdir()
        project.configure(feeds)
        code, out = project.run()
        assert code == 1, out  # the captcha page: those feeds fail, alone
        archives[way] = project.snapshot()
        # Every feed parsed there, and the entries of those with new ones read there too.
        assert (_WarmOffload.pooled > len(feeds)) is (way == "worker"), way
    assert archives["worker"] == archives["here"] and len(archives["here"]) > 15
