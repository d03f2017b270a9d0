"""Kept sources and `ingest rebuild`: posts made again offline, byte for byte."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA, SHARED, Project, front_matter, needs_shared
from tests.loopback import Loopback
from tests.test_backfill import ITEMS, channel  # noqa: F401  (channel: a fixture)
from tests.test_full_content import IDS, serve_pages, summary_feed
from tests.test_images import photo, size_of

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


def test_kept_sources_are_stored_once_and_a_304_stores_nothing(project: Project, server: Loopback) -> None:
    server.route("/feed", OWN_SAMPLE.read_bytes(), etag='"v1"')
    project.configure([{"name": "36kr", "url": server.url("/feed")}])
    assert project.run()[0] == 0
    objects = sorted((project.root / "sources" / "objects").rglob("*.gz"))
    assert len(objects) == 1 and gzip.decompress(objects[0].read_bytes()) == OWN_SAMPLE.read_bytes()
    records = sorted((project.root / "sources" / "posts").rglob("*.json"))
    assert len(records) == 2
    entry = json.loads(records[0].read_text())["entry"]
    assert entry["kind"] == "feed" and entry["asked"] == server.url("/feed")
    assert entry["content_type"].startswith("application/rss+xml")
    assert entry["bytes"] == OWN_SAMPLE.stat().st_size
    snapshot = {p: p.read_bytes() for p in (project.root / "sources").rglob("*") if p.is_file()}
    project.clock.advance(hours=1)
    code, out = project.run()  # a 304
    assert code == 0 and "sources:" not in out
    server.route("/feed", OWN_SAMPLE.read_bytes())  # the same bytes, answered 200: no validators
    project.clock.advance(hours=1)
    assert project.run()[0] == 0
    assert {p: p.read_bytes() for p in (project.root / "sources").rglob("*") if p.is_file()} == snapshot
    assert "sources kept: 1 document" in project.run("status")[1]


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
    assert len(list((project.root / "sources" / "objects").rglob("*.gz"))) == 2
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
    feed_object = next(p for p in sources.rglob("*.gz")
                       if gzip.decompress(p.read_bytes()) == OWN_SAMPLE.read_bytes())
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
