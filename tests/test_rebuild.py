"""Kept sources and `ingest rebuild`: posts made again offline, byte for byte."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.archive import Stage
from ingest.kept import Kept, pieces_of
from ingest.models import Document
from tests import feedgen
from tests.conftest import DATA, SHARED, Project, front_matter, needs_shared
from tests.loopback import Loopback
from tests.test_backfill import ITEMS, channel  # noqa: F401  (channel: a fixture)
from tests.test_crash import posts_on_disk, wait_until
from tests.test_full_content import IDS, serve_pages, summary_feed
from tests.test_images import article_feed, photo, size_of

SUMMARY_MARK = "总结:"
OWN_SAMPLE = DATA / "feeds" / "36kr-official.xml"
GOLDEN_SAMPLE = SHARED / "golden" / "feed.xml"


def posts_bytes(project: Project) -> dict[str, bytes]:
    return {p.relative_to(project.archive).as_posix(): p.read_bytes()
            for p in sorted(project.archive.glob("*/*/*/*/index.md"))}


def images(project: Project) -> dict[str, bytes]:
    return {k: v for k, v in project.snapshot().items() if not k.endswith("/index.md")}


def delete_posts(project: Project) -> None:
    for post in project.archive.glob("*/*/*/*/index.md"):
        post.unlink()


def configure(project: Project, site: str, **settings: Any) -> None:
    """A whole 36kr feed (the sample's shape), and a summary-only one of three article pages."""
    feeds = [{"name": "36krai", "url": "https://www.36kr.com/feed"},
             {"name": "user", "url": "https://www.36kr.com/feed-user"}]
    project.configure(feeds, images=True, image_max_width=1200, full_content="auto",
                      sources={"36kr": {"site": site, "delay": 0.001}}, **settings)


def archive_from(project: Project, sample: str) -> tuple[dict[str, bytes], str, bytes]:
    """Run once with a server that then stops: the posts, the run's output, the original image."""
    wide = photo(2400, 1600)
    with Loopback() as server:
        for src in set(re.findall(r'<img src="([^"]+)"', sample)):
            server.route(src.split("36krcdn.com")[1].split("?")[0], wide, content_type="image/jpeg")
        serve_pages(server, "36kr-state.html")
        server.route("/img/v2_kitchen@000000_img_000", wide, content_type="image/jpeg")
        server.route("/feed", sample)
        server.route("/feed-user", summary_feed(IDS))
        configure(project, server.base)
        code, out = project.run(client=server.client())
        assert code == 0, out
        project.site = server.base  # type: ignore[attr-defined]
    return posts_bytes(project), out, wide


@pytest.mark.parametrize("sample", [
    pytest.param(GOLDEN_SAMPLE, marks=needs_shared, id="golden"), pytest.param(OWN_SAMPLE, id="own")])
def test_rebuild_brings_back_every_post_byte_for_byte_offline(project: Project, sample: Path) -> None:
    items = sample.read_text(encoding="utf-8").count("<item>")
    posts, out, wide = archive_from(project, sample.read_text(encoding="utf-8"))
    site = project.site  # type: ignore[attr-defined]
    assert len(posts) == items + 3
    pictures = images(project)
    stored = [project.archive / name for name in pictures]
    assert " 0 kept remote" in out  # every image is in its post's folder
    assert all(size_of(p)[0] <= 1200 and p.stat().st_size < len(wide) for p in stored)
    assert re.search(r"sources: \d+ documents kept \(\d+ KB compressed\)", out)

    delete_posts(project)  # and the server is gone: nothing can be fetched
    before = project.snapshot()
    code, out = project.run("rebuild", "--dry-run")
    assert code == 0 and f"{len(posts)} would be restored" in out and project.snapshot() == before
    code, out = project.run("rebuild")
    assert code == 0, out
    assert posts_bytes(project) == posts and images(project) == pictures
    assert f"{len(posts)} posts: 0 rewritten, {len(posts)} restored, 0 unchanged" in out

    configure(project, site, summary="none")
    code, out = project.run("rebuild")
    assert code == 0 and f"{len(posts)} rewritten" in out
    for path, text in project.posts().items():
        meta, body = front_matter(text)
        assert SUMMARY_MARK not in body and meta == front_matter(posts[path].decode())[0]
    assert images(project) == pictures

    configure(project, site, summary="auto")
    assert project.run("rebuild")[0] == 0
    assert posts_bytes(project) == posts and images(project) == pictures
    assert "0 rewritten, 0 restored" in project.run("rebuild")[1]  # nothing to do: nothing written


def kept_files(project: Project) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in (project.root / "sources").rglob("*") if p.is_file()}


def test_kept_sources_are_stored_once_and_a_304_stores_nothing(project: Project, server: Loopback) -> None:
    server.route("/feed", OWN_SAMPLE.read_bytes(), etag='"v1"')
    project.configure([{"name": "36kr", "url": server.url("/feed")}])
    assert project.run()[0] == 0
    records = sorted((project.root / "sources" / "posts").rglob("*.json"))
    assert len(records) == 2
    record = json.loads(records[0].read_text())
    entry = record["entry"]
    assert entry["kind"] == "feed" and entry["asked"] == server.url("/feed")
    assert entry["content_type"].startswith("application/rss+xml")
    assert entry["bytes"] == OWN_SAMPLE.stat().st_size
    kept = Kept(project.root / "sources")
    assert kept.read(kept.load(record["post"]).entry) == OWN_SAMPLE.read_bytes()  # the bytes as received
    snapshot = kept_files(project)
    project.clock.advance(hours=1)
    code, out = project.run()  # a 304
    assert code == 0 and "sources:" not in out
    server.route("/feed", OWN_SAMPLE.read_bytes())  # the same bytes, answered 200: no validators
    project.clock.advance(hours=1)
    assert project.run()[0] == 0
    assert kept_files(project) == snapshot
    assert "sources kept: 1 document" in project.run("status")[1]


def test_a_feed_with_one_new_item_keeps_that_item_not_the_feed_again(project: Project,
                                                                    server: Loopback) -> None:
    rng = random.Random(7)  # text that compresses as an article does, not as a repeated line
    articles = {f"a{n}": "<p>" + "".join(chr(rng.randrange(0x4E00, 0x4FFF)) for _ in range(1500)) + "</p>"
                for n in range(30)}
    server.route("/feed", article_feed(dict(list(articles.items())[1:])))
    project.configure([{"name": "blog", "url": server.url("/feed")}])
    assert project.run()[0] == 0
    before = sum(len(b) for b in kept_files(project).values() if not b.startswith(b"{"))
    server.route("/feed", article_feed(articles))
    project.clock.advance(hours=1)
    code, out = project.run()
    assert code == 0 and "1 new" in out
    added = sum(len(b) for b in kept_files(project).values() if not b.startswith(b"{")) - before
    assert added < before / 10  # the new item, the head and the list of pieces: not the whole again
    kept = Kept(project.root / "sources")
    for path in kept.posts():
        kept.read(kept.load(path).entry)  # every version whole


def test_a_changed_entry_keeps_its_new_sources_and_rebuilds_as_the_run_wrote_it(
        project: Project, server: Loopback) -> None:
    feed = OWN_SAMPLE.read_text(encoding="utf-8")
    server.route("/feed", feed)
    project.configure([{"name": "36kr", "url": server.url("/feed")}])
    assert project.run()[0] == 0
    project.clock.advance(days=1)
    server.route("/feed", feed.replace("早上七点", "早上八点"))
    code, out = project.run()
    assert code == 0 and "1 updated" in out
    posts = posts_bytes(project)
    assert Kept(project.root / "sources").usage()[0] == 2  # both versions of the feed
    delete_posts(project)
    assert project.run("rebuild")[0] == 0
    assert posts_bytes(project) == posts  # the updated post, with the lastmod of its update


def test_a_corrupt_or_missing_source_is_reported_and_its_post_left_as_it_is(
        project: Project, server: Loopback) -> None:
    server.route("/feed", OWN_SAMPLE.read_bytes())
    server.route("/other", summary_feed(IDS[:1], description="<p>" + "一段完整的正文。" * 40 + "</p>"))
    project.configure([{"name": "36kr", "url": server.url("/feed")},
                       {"name": "other", "url": server.url("/other")}], summary="none")
    assert project.run()[0] == 0
    posts = posts_bytes(project)
    sources = project.root / "sources"
    kept = Kept(sources)
    ref = kept.load(next(p for p in kept.posts() if "3001000000000001" in p)).entry
    pieces = (sources / "objects" / ref.sha256[:2] / f"{ref.sha256[2:]}.chunks").read_text().split()
    feed_object = sources / "objects" / pieces[1][:2] / f"{pieces[1][2:]}.gz"
    feed_object.write_bytes(feed_object.read_bytes()[:40])  # cut short
    lone = next(p for p in sources.joinpath("posts").rglob("*.json") if "3200000000000001" in p.name)
    lone.unlink()
    project.configure([{"name": "36kr", "url": server.url("/feed")},
                       {"name": "other", "url": server.url("/other")}], summary="extractive")
    code, out = project.run("rebuild")
    assert code == 1
    assert out.count("is corrupt in") == 2 and "no sources kept" in out and "left as it is" in out
    assert "3 posts: 0 rewritten, 0 restored, 0 unchanged, 3 without sources" in out
    assert posts_bytes(project) == posts  # left as they are
    feed_object.unlink()
    code, out = project.run("rebuild")
    assert code == 1 and out.count("is missing from") == 2


def test_backfilled_posts_rebuild_too(project: Project, channel: Loopback) -> None:  # noqa: F811
    urls = project.root / "urls.txt"
    urls.write_text(f"https://www.36kr.com/p/{ITEMS[0]['itemId']}?f=rss\n")
    assert project.run("backfill", "urls", str(urls), "--category", "36kr")[0] == 0
    assert project.run("backfill", "36kr", "--channel", "AI", "--since", "2026-03-18")[0] == 0
    assert project.run("backfill", "feed", str(OWN_SAMPLE))[0] == 0
    posts = posts_bytes(project)
    kinds = {json.loads(p.read_text())["entry"]["kind"]
             for p in (project.root / "sources" / "posts").rglob("*.json")}
    assert len(posts) > 10 and kinds == {"page", "36kr-flow", "feed"}
    delete_posts(project)
    channel.stop()
    code, out = project.run("rebuild")
    assert code == 0, out
    assert posts_bytes(project) == posts


def test_rebuild_takes_paths_and_a_feed(project: Project, server: Loopback) -> None:
    server.route("/feed", OWN_SAMPLE.read_bytes())
    server.route("/other", summary_feed(IDS[:1], description="<p>" + "一段完整的正文。" * 40 + "</p>"))
    feeds = [{"name": "36kr", "url": server.url("/feed")}, {"name": "other", "url": server.url("/other")}]
    project.configure(feeds)
    assert project.run()[0] == 0
    posts = posts_bytes(project)
    delete_posts(project)
    first = sorted(posts)[-1]
    code, out = project.run("rebuild", str(project.archive / first))
    assert code == 0 and "1 post: 0 rewritten, 1 restored" in out
    code, out = project.run("rebuild", "--feed", "other", "--dry-run")
    assert code == 0 and "1 post (dry run): 0 would be rewritten, 1 would be restored" in out
    assert len(posts_bytes(project)) == 1
    code, out = project.run("rebuild", "--feed", "other")
    assert code == 0 and len(posts_bytes(project)) == 2
    code, out = project.run("rebuild", str(project.archive / first[:4]))  # a year's folder
    assert code == 0 and "1 unchanged" in out
    code, out = project.run("rebuild", str(project.root))
    assert code == 2


def test_rebuild_waits_for_no_run_it_holds_the_lock(project: Project, server: Loopback) -> None:
    from ingest.lock import RunLock

    server.route("/feed", OWN_SAMPLE.read_bytes())
    project.configure([{"name": "36kr", "url": server.url("/feed")}])
    assert project.run()[0] == 0
    with RunLock(project.state_dir, "run", project.clock()):
        assert project.run("rebuild")[0] == 2


FEEDISH = st.lists(st.sampled_from([b"<item>", b"<entry ", b"<atom:entry>", b"</channel>", b"</feed>",
                                    b"<item/>", b"<items>", b"x", b"\n", b"<", b"\xff"]), max_size=40)


@given(FEEDISH.map(b"".join))
def test_a_feed_in_pieces_is_the_feed(body: bytes) -> None:
    pieces = pieces_of(body)
    assert b"".join(pieces) == body and all(pieces)
    # Cut before each item or entry and before the end of the feed, nowhere else.
    cuts = (b"<item>", b"<item/>", b"<entry ", b"<atom:entry>", b"</channel>", b"</feed>")
    assert all(piece.startswith(cuts) for piece in pieces[1:])
    assert not any(cut in piece[1:] for piece in pieces for cut in cuts)
    with tempfile.TemporaryDirectory() as folder:
        kept, stage = Kept(Path(folder)), Stage()
        ref = kept.keep(Document("feed", "u", "u", "", body, datetime.now(UTC)), stage)
        stage.commit()
        assert kept.read(ref) == body


def test_a_rebuild_killed_midway_loses_nothing_and_the_next_finishes_it(project: Project,
                                                                       server: Loopback) -> None:
    server.route("/feed", feedgen.feed(400))
    project.configure([{"name": "36kr", "url": server.url("/feed")}], summary="extractive")
    assert project.run()[0] == 0
    posts = posts_bytes(project)
    delete_posts(project)
    process = subprocess.Popen([sys.executable, "-m", "ingest", "--config", str(project.config), "rebuild"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: posts_on_disk(project) >= 100, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 0 < posts_on_disk(project) < len(posts)
    assert all(posts[path] == text for path, text in posts_bytes(project).items())  # whole, if there
    code, out = project.run("rebuild")
    assert code == 0, out
    assert posts_bytes(project) == posts
    assert not [p for p in project.root.rglob("*") if p.name.endswith(".tmp")]


def test_changed_front_matter_is_rendered_and_the_dates_stay(project: Project, server: Loopback) -> None:
    server.route("/feed", OWN_SAMPLE.read_bytes())
    feeds = [{"name": "36kr", "url": server.url("/feed")}]
    project.configure(feeds)
    assert project.run()[0] == 0
    posts = project.posts()
    project.clock.advance(days=30)
    project.configure(feeds, front_matter={"author": ["someone else"], "draft": False})
    code, out = project.run("rebuild")
    assert code == 0 and f"{len(posts)} rewritten" in out
    for path, text in project.posts().items():
        meta, body = front_matter(text)
        old_meta, old_body = front_matter(posts[path])
        assert meta["author"] == ["someone else"] and "tags" not in meta and body == old_body
        assert (meta["date"], meta["lastmod"]) == (old_meta["date"], old_meta["lastmod"])


def test_posts_older_than_their_sources_are_counted_not_each_listed(project: Project,
                                                                    server: Loopback) -> None:
    server.route("/feed", feedgen.feed(30))
    project.configure([{"name": "36kr", "url": server.url("/feed")}], keep_sources=False)
    assert project.run()[0] == 0
    project.configure([{"name": "36kr", "url": server.url("/feed")}])
    code, out = project.run("rebuild")
    assert code == 1 and out.count("no sources kept") == 20
    assert "- … and 10 more like these (-v lists them all)" in out and "30 without sources" in out
    assert project.run("rebuild", "-v")[1].count("no sources kept") == 30
