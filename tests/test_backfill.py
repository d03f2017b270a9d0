"""Backfill: 36kr's channel history (a loopback gateway and article pages), URL lists, saved feeds."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ingest.backfill import flow_payload, parse_flow
from tests.conftest import DATA, Project, front_matter
from tests.loopback import Loopback, Request
from tests.test_images import PNG

NEWEST = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
WORKERS = 8  # http.workers' default
PAGES = 4  # of 30 items: ads among them, one item every 4 hours


def items() -> list[dict[str, Any]]:
    """The channel's items, newest first: every 7th is an ad."""
    found = []
    for n in range(PAGES * 30):
        published = int((NEWEST - timedelta(hours=4 * n)).timestamp() * 1000)
        article = 3_500_000_000_000_000 + n
        if n % 7 == 3:
            found.append({"itemId": 9_000 + n, "itemType": 0, "templateMaterial": {"itemId": 9_000 + n,
                          "widgetTitle": "广告", "publishTime": published}})
        else:
            found.append({"itemId": article, "itemType": 10, "templateMaterial": {
                "itemId": article, "widgetTitle": f"第{n}篇文章", "summary": f"第{n}篇的摘要。",
                "publishTime": published, "authorName": "作者"}})
    return found


ITEMS = items()


def gateway(request: Request) -> tuple[int, dict[str, str], bytes]:
    body = json.loads(request.body)
    param = body["param"]
    assert param["subnavNick"] == "AI" and param["pageSize"] == 30 and body["partner_id"] == "web"
    page = 0 if param["pageEvent"] == 0 else int(param["pageCallback"].removeprefix("cb-")) + 1
    chunk = ITEMS[page * 30:(page + 1) * 30]
    data = {"itemList": chunk, "pageCallback": f"cb-{page}", "hasNextPage": int(page < PAGES - 1)}
    return 200, {"Content-Type": "application/json"}, json.dumps({"code": 0, "data": data}).encode()


def article_page(server: Loopback, article: int) -> bytes:
    n = article - 3_500_000_000_000_000
    state = {"articleDetail": {"articleDetailData": {"data": {
        "widgetTitle": f"第{n}篇文章", "author": "作者",
        "publishTime": ITEMS[n]["templateMaterial"]["publishTime"],
        "widgetContent": f"<p>第{n}篇文章的正文，讲的是城市和科技。</p>"
                         f'<p><img src="{server.base}/img/{n}.png"/></p><p>第二段，更多的细节和数字。</p>'}}},
        "isEncrypt": False}
    return (f"<html><body><script>window.initialState={json.dumps(state, ensure_ascii=False)}"
            "</script></body></html>").encode()


@pytest.fixture
def channel(project: Project, server: Loopback) -> Loopback:
    server.route("/api/mis/nav/ifm/subNav/flow", handler=gateway)
    for n, item in enumerate(ITEMS):
        if item["itemType"]:
            server.route(f"/p/{item['itemId']}", article_page(server, int(item["itemId"])),
                         content_type="text/html")
            server.route(f"/img/{n}.png", PNG, content_type="image/png")
    project.configure([{"name": "36kr", "url": server.url("/feed")}], images=True, full_content="auto",
                      sources={"36kr": {"site": server.base, "gateway": server.base, "delay": 0.001}})
    return server


def wanted(since: datetime, until: datetime | None = None) -> set[str]:
    return {f"36kr:{i['itemId']}" for i in ITEMS if i["itemType"]
            and since <= datetime.fromtimestamp(i["templateMaterial"]["publishTime"] / 1000, UTC)
            and (until is None or datetime.fromtimestamp(
                i["templateMaterial"]["publishTime"] / 1000, UTC) < until)}


def archived_ids(project: Project) -> list[str]:
    return [front_matter(t)[0]["ingest"]["id"] for t in project.posts().values()]


def page_hits(server: Loopback) -> list[str]:
    return [r.path for r in server.requests if r.path.startswith("/p/")]


def flow_hits(server: Loopback) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/flow"))


SINCE = "2026-03-08"  # two and a half pages back: page 4 is never asked for


def test_a_backfill_archives_exactly_the_non_ad_articles_since_the_date(project: Project,
                                                                        channel: Loopback) -> None:
    code, out = project.run("backfill", "36kr", "--channel", "AI", "--since", SINCE)
    assert code == 0, out
    expected = wanted(datetime(2026, 3, 8, tzinfo=UTC))
    ids = archived_ids(project)
    assert sorted(ids) == sorted(expected) and len(ids) == len(set(ids))
    assert flow_hits(channel) == 3  # the third page reaches past --since: no fourth
    for path, text in project.posts().items():
        meta, body = front_matter(text)
        n = int(meta["ingest"]["id"].split(":")[1]) - 3_500_000_000_000_000
        published = NEWEST - timedelta(hours=4 * n)
        assert path.startswith(f"{published:%Y/%m/%d}/") and meta["date"] == published.strftime(
            "%a, %d %b %Y %H:%M:%S GMT")
        assert meta["categories"] == ["36krai"]
        assert meta["canonicalURL"] == f"https://36kr.com/p/{meta['ingest']['id'].split(':')[1]}"
        assert f"第{n}篇文章的正文" in body and ".png" in body and "/img/" not in body  # image local
    assert "backfill 3 pages: " in out and f"{len(expected)} archived" in out


def test_until_bounds_the_range(project: Project, channel: Loopback) -> None:
    assert project.run("backfill", "36kr", "--channel", "AI", "--since", "2026-03-10",
                       "--until", "2026-03-15")[0] == 0
    assert sorted(archived_ids(project)) == sorted(
        wanted(datetime(2026, 3, 10, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC)))


def test_a_second_run_fetches_no_article_again(project: Project, channel: Loopback) -> None:
    project.run("backfill", "36kr", "--channel", "AI", "--since", SINCE)
    fetched = len(page_hits(channel))
    code, out = project.run("backfill", "36kr", "--channel", "AI", "--since", SINCE)
    assert code == 0 and len(page_hits(channel)) == fetched and "0 archived" in out


def test_a_bot_wall_stops_the_backfill_and_the_same_command_resumes(project: Project,
                                                                    channel: Loopback) -> None:
    blocked = next(i for i in ITEMS[35:] if i["itemType"])["itemId"]  # on the second page
    channel.route(f"/p/{blocked}", (DATA / "feeds" / "security-check.html").read_bytes(),
                  content_type="text/html")
    code, out = project.run("backfill", "36kr", "--channel", "AI", "--since", SINCE)
    assert code == 1 and "stopped" in out and "run the same command later to resume" in out
    assert f"36kr:{blocked}" not in archived_ids(project)
    assert flow_hits(channel) == 2  # it did not go on to the third page
    hits = page_hits(channel)
    assert hits.count(f"/p/{blocked}") == 1  # asked once: the host is left alone after the wall
    channel.route(f"/p/{blocked}", article_page(channel, int(blocked)), content_type="text/html")
    code, out = project.run("backfill", "36kr", "--channel", "AI", "--since", SINCE)
    assert code == 0 and "resuming after page 1" in out
    ids = archived_ids(project)
    assert sorted(ids) == sorted(wanted(datetime(2026, 3, 8, tzinfo=UTC))) and len(ids) == len(set(ids))


def test_a_killed_backfill_resumes_complete_with_no_duplicate(project: Project, channel: Loopback) -> None:
    # Paced like 36kr (one request at a time, here 30 ms apart): the kill lands within a few
    # ms of the posts appearing, before another article can be done. Unpaced, articles done
    # in that moment were not named yet and were fetched again, and the count was luck.
    project.configure([{"name": "36kr", "url": channel.url("/feed")}], images=True, full_content="auto",
                      sources={"36kr": {"site": channel.base, "gateway": channel.base, "delay": 0.03}})
    process = subprocess.Popen([sys.executable, "-m", "ingest", "--config", str(project.config), "backfill",
                                "36kr", "--channel", "AI", "--since", SINCE],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(project.archive.glob("*/*/*/*/index.md"))) < 35 and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert project.run("backfill", "36kr", "--channel", "AI", "--since", SINCE)[0] == 0
    ids = archived_ids(project)
    assert sorted(ids) == sorted(wanted(datetime(2026, 3, 8, tzinfo=UTC))) and len(ids) == len(set(ids))
    hits = page_hits(channel)
    # Only articles in flight when the kill came are fetched again: at most one per worker.
    assert sum(hits.count(p) > 1 for p in set(hits)) <= WORKERS


def test_the_feed_poll_and_the_backfill_never_duplicate_each_other(project: Project,
                                                                    channel: Loopback) -> None:
    poll_items = "".join(
        f"<item><title>第{n}篇文章</title><link>https://36kr.com/p/{3_500_000_000_000_000 + n}?f=rss</link>"
        f"<pubDate>{(NEWEST - timedelta(hours=4 * n)):%Y-%m-%d %H:%M:%S}  +0000</pubDate>"
        f"<description><![CDATA[<p>第{n}篇文章的正文。</p><p>足够长的第二段，讲的是城市和科技的故事。</p>"
        f"<p>第三段。</p>]]></description></item>" for n in (0, 1, 2))
    channel.route("/feed", f'<?xml version="1.0"?><rss version="2.0"><channel>{poll_items}</channel></rss>')
    assert project.run()[0] == 0  # the poll first: three articles
    before = len(page_hits(channel))
    assert project.run("backfill", "36kr", "--channel", "AI", "--since", SINCE)[0] == 0
    by_backfill = set(page_hits(channel)[before:])
    assert not {f"/p/{3_500_000_000_000_000 + n}" for n in (0, 1, 2)} & by_backfill
    project.clock.advance(hours=1)
    channel.route("/feed", f'<?xml version="1.0"?><rss version="2.0"><channel>{poll_items}'
                  .replace("第三段", "第三段（改）") + "</channel></rss>")
    assert project.run()[0] == 0  # the poll afterwards: owned by the poll, updated in place
    ids = archived_ids(project)
    assert len(ids) == len(set(ids))


def test_requests_to_36kr_keep_the_delay(project: Project, channel: Loopback) -> None:
    project.configure([{"name": "36kr", "url": channel.url("/feed")}], images=False,
                      sources={"36kr": {"site": channel.base, "gateway": channel.base, "delay": 0.15}})
    assert project.run("backfill", "36kr", "--channel", "AI", "--since", "2026-03-18")[0] == 0
    times = sorted(r.at for r in channel.requests if r.path.startswith(("/p/", "/api/")))
    assert len(times) > 5 and all(b - a >= 0.14 for a, b in itertools.pairwise(times))


def test_dry_run_lists_and_fetches_no_article(project: Project, channel: Loopback) -> None:
    code, out = project.run("backfill", "36kr", "--channel", "AI", "--since", SINCE, "--dry-run")
    assert code == 0 and page_hits(channel) == [] and project.posts() == {}
    assert out.count("(new)") == len(wanted(datetime(2026, 3, 8, tzinfo=UTC)))
    assert "第0篇文章" in out and "广告" not in out


def test_backfill_urls(project: Project, channel: Loopback) -> None:
    first, second = (int(i["itemId"]) for i in ITEMS[:2])
    urls = project.root / "urls.txt"
    urls.write_text(f"# one a line\nhttps://www.36kr.com/p/{first}?f=rss\n\nhttp://36kr.com/p/{second}.html\n"
                    f"https://m.36kr.com/p/{first}\n")
    assert project.run("backfill", "urls", str(urls), "--category", "36kr")[0] == 0
    assert sorted(archived_ids(project)) == [f"36kr:{first}", f"36kr:{second}"]
    meta, _ = front_matter(project.posts()[f"{NEWEST:%Y/%m/%d}/{first}/index.md"])
    assert meta["title"] == "第0篇文章" and meta["categories"] == ["36kr"]
    hits = len(page_hits(channel))
    assert project.run("backfill", "urls", str(urls))[0] == 0 and len(page_hits(channel)) == hits


def test_backfill_a_saved_feed(project: Project, channel: Loopback) -> None:
    code, out = project.run("backfill", "feed", str(DATA / "feeds" / "36kr-official.xml"))
    assert code == 0 and len(project.posts()) == 2
    assert all(front_matter(t)[0]["categories"] == ["backfill"] for t in project.posts().values())
    code, out = project.run("backfill", "feed", str(DATA / "feeds" / "36kr-official.xml"))
    assert code == 0 and "0 archived, 2 already archived" in out


def test_flow_payload_and_answers() -> None:
    first = flow_payload("AI", "", NEWEST)
    assert first["param"]["pageEvent"] == 0 and first["param"]["pageCallback"] == ""
    assert first["timestamp"] == int(NEWEST.timestamp() * 1000)
    assert flow_payload("AI", "cb", NEWEST)["param"]["pageEvent"] == 1
    page = parse_flow(json.dumps({"code": 0, "data": {"itemList": ITEMS[:7], "pageCallback": "x",
                                                      "hasNextPage": 1}}).encode(), "u")
    assert len(page.entries) == 6 and page.cursor == "x" and page.has_next
    assert page.entries[0].key == f"36kr:{ITEMS[0]['itemId']}"
