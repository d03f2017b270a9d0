"""Every real feed of ../shared/corpus, served from 127.0.0.1, through the whole pipeline."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest import verify
from ingest.parse import parse_feed
from tests.conftest import SHARED, Project, front_matter, needs_hugo, needs_shared
from tests.loopback import Loopback

pytestmark = needs_shared
CORPUS = SHARED / "corpus"
# Bodies in the corpus that are not feeds, and the error each must give instead of posts.
NOT_FEEDS = {
    "36kr/shushuzn-workspace/36kr_feed.xml": "bot wall",
    "other/rbren-rss-parser/unrecognized.rss": "HTML page",
    "other/jianglibo-resp-me-templates/qq.com.gb2312.html": "HTML page",
}


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*")
                  if p.suffix in (".xml", ".rss", ".atom", ".html") and p.is_file())


def feed_name(path: Path) -> str:
    return path.relative_to(CORPUS).as_posix().replace("/", "_")[:60]


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, Loopback, str]]:
    project = Project(tmp_path_factory.mktemp("corpus"))
    with Loopback() as server:
        feeds = []
        for i, path in enumerate(corpus_files()):
            rel = "/" + path.relative_to(CORPUS).as_posix()
            server.route(rel, path.read_bytes(), content_type="application/xml", etag=f'"{i}"')
            feeds.append({"name": feed_name(path), "url": server.url(rel)})
        project.configure(feeds)
        _, out = project.run()
        yield project, server, out


def test_each_item_is_one_post_or_the_feed_fails_alone(corpus_run: tuple[Project, Loopback, str]) -> None:
    project, _, out = corpus_run
    lines = {line.split()[0]: line for line in out.splitlines()[:-1]}
    keys: set[str] = set()
    for path in corpus_files():
        line = lines[feed_name(path)]
        rel = path.relative_to(CORPUS).as_posix()
        if rel in NOT_FEEDS:
            assert "error" in line and NOT_FEEDS[rel] in line and rel in line
            continue
        assert " ok " in line, line
        keys |= {e.key for e in parse_feed(path.read_bytes(), "http://127.0.0.1/").entries}
    posts = [front_matter(text)[0] for text in project.posts().values()]
    assert sorted(p["ingest"]["id"] for p in posts) == sorted(keys)  # each item exactly once


def test_second_run_writes_nothing_and_sends_conditional_headers(
        corpus_run: tuple[Project, Loopback, str]) -> None:
    project, server, _ = corpus_run
    before = project.snapshot()
    code, out = project.run()
    assert code == 1  # the three non-feeds still fail
    assert project.snapshot() == before
    ok_feeds = [p for p in corpus_files() if p.relative_to(CORPUS).as_posix() not in NOT_FEEDS]
    for path in ok_feeds:
        last = server.hits("/" + path.relative_to(CORPUS).as_posix())[-1]
        assert last.headers.get("if-none-match"), path
    assert out.count("not-modified") == len(ok_feeds)


def test_deleting_the_state_changes_no_byte(corpus_run: tuple[Project, Loopback, str]) -> None:
    project, _, _ = corpus_run
    before = project.snapshot()
    shutil.rmtree(project.state_dir)
    project.clock.advance(days=2)
    project.run()
    assert project.snapshot() == before


@needs_hugo
def test_every_corpus_post_renders_intact_in_hugo(corpus_run: tuple[Project, Loopback, str]) -> None:
    project, _, _ = corpus_run
    site = SHARED / "hugo-site"
    problems = verify.verify(project.archive, hugo=True, site=site)
    assert problems == []
    assert len(project.posts()) > 800


def test_every_corpus_post_rebuilds_byte_for_byte_offline(corpus_run: tuple[Project, Loopback, str]) -> None:
    project, _, _ = corpus_run
    before = project.snapshot()
    for post in project.archive.glob("*/*/*/*/index.md"):
        post.unlink()
    code, out = project.run("rebuild")
    assert code == 0, out
    assert project.snapshot() == before
    assert f"{len(project.posts())} posts: 0 rewritten, {len(project.posts())} restored" in out


def test_consecutive_polls_of_one_feed_update_in_place(project: Project, server: Loopback) -> None:
    polls = sorted((CORPUS / "36kr" / "ArnoFrost-RSS-GPT").glob("36kr-ai.poll*.xml"))
    route = server.route("/ai", polls[0].read_bytes())
    project.configure([{"name": "36krai", "url": server.url("/ai")}])
    seen: set[str] = set()
    for poll in polls:
        route.body = poll.read_bytes()
        project.clock.advance(minutes=30)
        code, _ = project.run()
        assert code == 0
        seen |= {e.key for e in parse_feed(poll.read_bytes(), "http://x/").entries}
    posts = project.posts()
    assert len(posts) == len(seen)  # items added and dropped between polls, never duplicated
    lastmods = {front_matter(t)[0]["lastmod"] for t in posts.values()}
    assert any(m.startswith("Wed, 25 Nov 2026") for m in lastmods)  # updated in place


def test_36kr_user_feed_poll_sequence(project: Project, server: Loopback) -> None:
    polls = sorted((CORPUS / "36kr" / "tomdhyang-byte-36kr-user-feed").glob("feed.poll*.xml"))
    route = server.route("/user", polls[0].read_bytes())
    project.configure([{"name": "user", "url": server.url("/user")}])
    counts = []
    for poll in polls:
        route.body = poll.read_bytes()
        assert project.run()[0] == 0
        counts.append(len(project.posts()))
    assert counts == [0, 40, 40, 40]  # vanished items stay archived
