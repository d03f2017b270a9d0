"""`ingest search`: Chinese words of any length, English prefixes, phrases, and an
index that follows every run and survives the loss of the state."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.search import _key, parse_query, terms
from tests.conftest import Project
from tests.loopback import Loopback


def rss(*items: tuple[str, str, str]) -> bytes:
    """A feed of (title, date, body) items, each linked by its title."""
    return ('<rss version="2.0"><channel><title>t</title>' + "".join(
        f"<item><title>{t}</title><link>https://x.example/{t}</link><pubDate>{d}</pubDate>"
        f"<description><![CDATA[{b}]]></description></item>" for t, d, b in items)
        + "</channel></rss>").encode()


FIRST = [
    ("城市更新进入第二阶段", "Mon, 01 Jan 2024 08:00:00 GMT",
     "<p>老城区的<strong>城市</strong>更新项目，居民可以选择回迁。</p>"),
    ("Robots in the warehouse", "Tue, 02 Jan 2024 08:00:00 GMT",
     "<p>Robotics firms say machine learning changes everything. 机器人公司融资。</p>"),
    ("一家书店的线上转型", "Wed, 03 Jan 2024 08:00:00 GMT",
     "<p>书店老板说：城市里的读者越来越少，Machine Learning 帮了大忙。</p>"),
]
LATER = ("城市规划的新思路", "Thu, 04 Jan 2024 08:00:00 GMT", "<p>规划师谈城市与街巷。</p>")


@pytest.fixture
def archived(project: Project, server: Loopback) -> Project:
    server.route("/feed", rss(*FIRST))
    server.route("/other", rss(("另一个源的文章", "Fri, 05 Jan 2024 08:00:00 GMT", "<p>这里也谈城市。</p>")))
    project.configure([{"name": "a", "url": server.url("/feed")}, {"name": "b", "url": server.url("/other")}])
    assert project.run()[0] == 0
    return project


def titles(project: Project, *query: str) -> list[str]:
    code, out = project.run("search", *query, "--json")
    assert code in (0, 1), out
    return [hit["title"] for hit in json.loads(out)]


@pytest.mark.parametrize(("query", "expected"), [
    (["城市"], ["城市更新进入第二阶段", "另一个源的文章", "一家书店的线上转型"]),  # title hits, then newest
    (["城市更新"], ["城市更新进入第二阶段"]),  # across the <strong>: the text, not the markup
    (["城"], ["城市更新进入第二阶段", "另一个源的文章", "一家书店的线上转型"]),  # one character: a substring
    (["机器人"], ["Robots in the warehouse"]),
    (["robot"], ["Robots in the warehouse"]),  # a prefix, any case
    (["MACHINE"], ["一家书店的线上转型", "Robots in the warehouse"]),
    (['"machine learning"'], ["一家书店的线上转型", "Robots in the warehouse"]),
    (['"learning machine"'], []),
    (["城市", "书店"], ["一家书店的线上转型"]),  # every word
    (["城市", "--feed", "b"], ["另一个源的文章"]),
    (["城市", "--since", "2024-01-03"], ["另一个源的文章", "一家书店的线上转型"]),
    (["warehouse", "--limit", "1"], ["Robots in the warehouse"]),
    (["更新第二"], []),  # both words are there, but not together
])
def test_queries(archived: Project, query: list[str], expected: list[str]) -> None:
    assert titles(archived, *query) == expected


def test_exit_codes_and_the_line_format(archived: Project) -> None:
    code, out = archived.run("search", "书店")
    assert code == 0 and out.splitlines() == [
        f"2024-01-03  {next(p for p in archived.posts() if '2024/01/03' in p)}  一家书店的线上转型"]
    assert archived.run("search", "没有这个词") == (1, "")
    assert archived.run("search", '"unclosed') == (2, "")
    assert archived.run("search", '""')[0] == 2


def test_the_index_follows_runs_and_survives_the_loss_of_the_state(archived: Project,
                                                                  server: Loopback) -> None:
    server.route("/feed", rss(*FIRST, LATER))
    archived.clock.advance(hours=1)
    assert archived.run()[0] == 0
    assert "城市规划的新思路" in titles(archived, "规划")
    before = titles(archived, "城市")
    shutil.rmtree(archived.state_dir)
    assert titles(archived, "城市") == before
    assert archived.run("reindex")[0] == 0 and titles(archived, "城市") == before


def test_an_index_not_built_whole_is_built_again(archived: Project, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ingest.search.ANNOUNCED_BUILD", 4)  # as if 4 posts took minutes
    before = titles(archived, "城市")
    index = sqlite3.connect(archived.state_dir / "search.sqlite3")
    # As an index made by an older ingest, or one whose build was killed, is: its posts
    # anything or nothing, its version not this one.
    with index:
        index.execute("DELETE FROM posts")
        index.execute("PRAGMA user_version = 1")
    index.close()
    capsys.readouterr()
    assert titles(archived, "城市") == before
    assert "building the search index of 4 posts" in capsys.readouterr().err
    titles(archived, "城市")
    assert capsys.readouterr().err == ""  # once


def test_an_index_another_process_is_building_is_waited_for_then_named(
        archived: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    titles(archived, "城市")
    monkeypatch.setattr("ingest.search.BUSY_SECONDS", 0.2)
    other = sqlite3.connect(archived.state_dir / "search.sqlite3", isolation_level=None)
    other.execute("PRAGMA user_version = 0")  # to be built again, and another search doing it:
    other.execute("BEGIN IMMEDIATE")
    try:
        capsys.readouterr()
        assert archived.run("search", "城市")[0] == 2
        assert "being written by another ingest" in capsys.readouterr().err
    finally:
        other.rollback()
        other.close()
    assert titles(archived, "城市")


def test_posts_a_run_could_not_index_are_found_by_the_next_search(
        archived: Project, server: Loopback, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    titles(archived, "城市")
    monkeypatch.setattr("ingest.search.BUSY_SECONDS", 0.2)
    server.route("/feed", rss(*FIRST, LATER))
    archived.clock.advance(hours=1)
    other = sqlite3.connect(archived.state_dir / "search.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # a search building the index, longer than a run waits
    try:
        capsys.readouterr()
        assert archived.run()[0] == 0  # the post is archived: only its indexing failed
        assert "the next search rebuilds it" in capsys.readouterr().err
    finally:
        other.rollback()
        other.close()
    stale = archived.state_dir / "search.sqlite3.stale"
    mark = stale.read_text()
    # The next run leaves the build to the search, as it does a missing index, and marks it
    # anew: a build under way (begun before its posts) must not clear the mark.
    second = ("城市规划第二篇", "Fri, 05 Jan 2024 09:00:00 GMT", "<p>再谈规划。</p>")
    server.route("/feed", rss(*FIRST, LATER, second))
    archived.clock.advance(hours=1)
    assert archived.run()[0] == 0 and stale.read_text() != mark
    assert titles(archived, "规划") == ["城市规划第二篇", "城市规划的新思路"]
    assert not stale.exists()


def test_a_backfill_is_searchable(archived: Project, tmp_path_factory: pytest.TempPathFactory) -> None:
    saved = tmp_path_factory.mktemp("saved") / "feed.xml"
    saved.write_bytes(rss(("旧文章里的无人机", "Sat, 01 Jan 2022 08:00:00 GMT", "<p>一篇旧文。</p>")))
    assert archived.run("backfill", "feed", str(saved))[0] == 0
    assert titles(archived, "无人机") == ["旧文章里的无人机"]


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
       st.integers(1, 10**9), st.text(max_size=40), st.text(max_size=40))
def test_property_ids_sort_as_dates_do(when: datetime, later: int, path: str, other: str) -> None:
    # Newest first by id is newest first by date: a query stops at its last result.
    assert _key(when, path) < _key(when + timedelta(seconds=later), other)
    assert _key(when.replace(microsecond=0), "") <= _key(when, path)  # a --since bound: its second, no path


CJK = st.text(alphabet="城市更新老区居民回迁规划", min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.lists(CJK, min_size=1, max_size=5), st.data())
def test_property_a_cjk_query_matches_exactly_the_texts_holding_it(texts: list[str],
                                                                    data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(texts))
    start = data.draw(st.integers(0, max(0, len(source) - 2)))
    word = source[start:start + data.draw(st.integers(2, 6))]
    if len(word) < 2:
        return
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(text)")
    db.executemany("INSERT INTO t (rowid, text) VALUES (?, ?)", [(i, terms(x)) for i, x in enumerate(texts)])
    found = {row[0] for row in db.execute("SELECT rowid FROM t WHERE t MATCH ?", (parse_query(word).match,))}
    assert found == {i for i, x in enumerate(texts) if word in x}


def test_a_word_is_the_phrase_of_its_pieces(project: Project, server: Loopback) -> None:
    server.route("/feed", rss(
        ("模型发布", "Mon, 01 Jan 2024 08:00:00 GMT", "<p>OpenAI 发布 GPT-4 Turbo，价格更低。</p>"),
        ("四个数字", "Tue, 02 Jan 2024 08:00:00 GMT", "<p>GPT 的第 4 个版本之外，还有 400 个插件。</p>"),
        ("融资消息", "Wed, 03 Jan 2024 08:00:00 GMT", "<p>这家公司完成了 A 轮融资，由红杉领投。</p>"),
    ))
    project.configure([{"name": "a", "url": server.url("/feed")}])
    assert project.run()[0] == 0
    assert titles(project, "GPT-4") == ["模型发布"]  # GPT then 4, not both anywhere
    assert titles(project, "gpt-4", "turb") == ["模型发布"]  # any case; a Latin word a prefix
    assert titles(project, "A轮融资") == ["融资消息"]  # 36kr writes a space between A and 轮
