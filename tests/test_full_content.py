"""Full articles from article pages: 36kr's and any site's; blocked pages never become posts."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from ingest import summary, verify
from ingest.clean import clean
from tests.conftest import DATA, Project, front_matter, needs_hugo
from tests.loopback import Loopback

PAGES = DATA / "pages"
IDS = ["3200000000000001", "3200000000000002", "3200000000000003"]


def summary_feed(ids: list[str], *, description: str = "一句话摘要。", host: str = "www.36kr.com") -> str:
    items = "".join(
        f"<item><title>文章{i}</title><link>https://{host}/p/{i}</link><guid>https://{host}/p/{i}</guid>"
        f"<pubDate>Fri, 31 Oct 2025 12:28:28 GMT</pubDate><description><![CDATA[{description}]]>"
        "</description></item>" for i in ids)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>用户</title>{items}</channel></rss>'


def page(server: Loopback, name: str) -> bytes:
    return (PAGES / name).read_bytes().replace(b"{{BASE}}", server.base.encode())


def setup(project: Project, server: Loopback, feed: str, **settings: Any) -> None:
    server.route("/feed", feed)
    defaults: dict[str, Any] = {"full_content": "auto",
                                "sources": {"36kr": {"site": server.base, "delay": 0.01}}}
    project.configure([{"name": "user", "url": server.url("/feed")}], **{**defaults, **settings})


def serve_pages(server: Loopback, name: str, ids: list[str] = IDS, **route: Any) -> None:
    for article in ids:
        server.route(f"/p/{article}", page(server, name), content_type="text/html; charset=utf-8", **route)


def page_hits(server: Loopback) -> int:
    return sum(1 for r in server.requests if r.path.startswith("/p/"))


def test_summary_only_36kr_feed_is_archived_from_the_article_pages(project: Project,
                                                                   server: Loopback) -> None:
    setup(project, server, summary_feed(IDS))
    serve_pages(server, "36kr-state.html")
    code, out = project.run()
    assert code == 0, out
    posts = project.posts()
    assert len(posts) == 3 and page_hits(server) == 3
    meta, body = front_matter(posts["2025/10/31/3200000000000001/index.md"])
    assert "城东的旧仓库改成了共享厨房" in body and "本文为测试内容" in body and "一句话摘要" not in body
    assert meta["canonicalURL"] == "https://36kr.com/p/3200000000000001"
    assert "[原文](https://www.36kr.com/p/3200000000000001)" in body


def test_encrypted_state_uses_the_rendered_article(project: Project, server: Loopback) -> None:
    setup(project, server, summary_feed(IDS[:1]))
    serve_pages(server, "36kr-encrypted.html", IDS[:1])
    assert project.run()[0] == 0
    (text,) = project.posts().values()
    assert "城东的旧仓库改成了共享厨房" in text and "相关文章" not in text


@pytest.mark.parametrize("wall", ["security-check.html", "captcha.html", "36kr-no-article.html"])
def test_a_blocked_host_is_left_alone_and_the_feed_content_archived_meanwhile(
        project: Project, server: Loopback, wall: str) -> None:
    setup(project, server, summary_feed(IDS), http={"workers": 8})  # pages queue for the host together
    body = (DATA / "feeds" / wall).read_bytes() if wall.endswith("check.html") or wall == "captcha.html" \
        else page(server, wall)
    for article in IDS:
        server.route(f"/p/{article}", body, content_type="text/html")
    code, out = project.run()
    assert code == 1 and page_hits(server) == 1  # the host is asked once, then left alone
    assert out.count("~ 文章") == 3 and "left alone until the next run" in out
    posts = project.posts()
    assert len(posts) == 3 and all("一句话摘要" in t for t in posts.values())
    assert not any("正在进行安全检测" in t or "TTGCaptcha" in t for t in posts.values())

    before = project.snapshot()
    project.clock.advance(hours=1)
    assert project.run()[0] == 1 and page_hits(server) == 2  # still blocked: asked again, once
    assert project.snapshot() == before  # no churn: not even lastmod moves

    serve_pages(server, "36kr-state.html")
    project.clock.advance(hours=1)
    code, out = project.run()
    assert code == 0 and "0 new, 3 updated" in out
    assert all("城东的旧仓库" in t for t in project.posts().values())
    assert project.run()[0] == 0 and page_hits(server) == 5  # whole now: never asked again


def test_an_item_without_content_whose_page_is_blocked_is_not_archived(project: Project,
                                                                       server: Loopback) -> None:
    setup(project, server, summary_feed(IDS[:1], description=""))
    server.route(f"/p/{IDS[0]}", (DATA / "feeds" / "security-check.html").read_bytes())
    code, out = project.run()
    assert code == 1 and "! 文章" in out and project.posts() == {}
    serve_pages(server, "36kr-state.html", IDS[:1])
    assert project.run()[0] == 0 and len(project.posts()) == 1


def test_a_missing_page_keeps_the_feed_content(project: Project, server: Loopback) -> None:
    setup(project, server, summary_feed(IDS[:1]))
    code, out = project.run()  # /p/<id> is not served: 404
    assert code == 1 and "HTTP 404" in out
    (text,) = project.posts().values()
    assert "一句话摘要" in text and front_matter(text)[0]["ingest"]["source"].endswith("-incomplete")


@pytest.mark.parametrize("mode", ["auto", "always"])
def test_a_missing_page_leaves_the_summary_made_of_the_feed_content(project: Project, server: Loopback,
                                                                    mode: str) -> None:
    description = "<p>" + "城东的旧仓库改成了共享厨房，附近的居民每天都来做饭。" * 3 + "</p>"
    setup(project, server, summary_feed(IDS[:1], description=description), full_content=mode,
          summary="extractive")
    assert project.run()[0] == 1  # /p/<id> is not served: 404
    (text,) = project.posts().values()
    made = summary.head_from(summary.extractive(clean(description).tree))
    assert "总结:" in made and made in text


@pytest.mark.parametrize(("mode", "hits"), [("never", 0), ("always", 3)])
def test_never_and_always(project: Project, server: Loopback, mode: str, hits: int) -> None:
    full = "<p>" + "这是一篇完整的文章，正文足够长。" * 80 + "</p><p><img src='https://x.example/a.png'></p>"
    setup(project, server, summary_feed(IDS, description=full), full_content=mode)
    serve_pages(server, "36kr-state.html")
    assert project.run()[0] == 0 and page_hits(server) == hits


def test_full_feed_content_is_not_refetched_in_auto(project: Project, server: Loopback) -> None:
    full = "".join(f"<p>第{i}段：这是一篇完整的文章，正文足够长，不需要再去抓取网页。</p>" for i in range(12))
    setup(project, server, summary_feed(IDS, description=full))
    assert project.run()[0] == 0 and page_hits(server) == 0


def test_newsflashes_are_never_fetched(project: Project, server: Loopback) -> None:
    feed = summary_feed(["3300000000000001"]).replace("/p/", "/newsflashes/")
    setup(project, server, feed, full_content="always")
    assert project.run()[0] == 0 and page_hits(server) == 0 and len(project.posts()) == 1


def test_requests_to_36kr_are_spaced_by_the_delay(project: Project, server: Loopback) -> None:
    setup(project, server, summary_feed(IDS), sources={"36kr": {"site": server.base, "delay": 0.3}})
    serve_pages(server, "36kr-state.html")
    assert project.run()[0] == 0
    times = sorted(r.at for r in server.requests if r.path.startswith("/p/"))
    assert all(b - a >= 0.29 for a, b in itertools.pairwise(times))


def test_any_site_summary_gets_the_article_without_the_chrome(project: Project, server: Loopback) -> None:
    feed = ('<?xml version="1.0"?><rss version="2.0"><channel><title>Eng</title><item><title>Build time'
            f'</title><link>{server.url("/blog/build-time?utm_source=rss")}</link><pubDate>Thu, 02 May 2024 '
            "06:30:00 GMT</pubDate><description>Our CI took 24 minutes. Here is how we halved it…"
            "</description></item></channel></rss>")
    setup(project, server, feed)
    server.route("/blog/build-time", page(server, "generic-article.html"), content_type="text/html")
    assert project.run()[0] == 0
    (text,) = project.posts().values()
    meta, body = front_matter(text)
    assert "make deps-cached test-sharded docs" in body and "Taming flaky tests" not in body
    assert "Tweet" not in body and "Sign up" not in body
    assert meta["canonicalURL"] == server.url("/blog/build-time")


@needs_hugo
def test_full_articles_render_intact(project: Project, server: Loopback) -> None:
    setup(project, server, summary_feed(IDS))
    serve_pages(server, "36kr-state.html")
    project.run()
    assert verify.verify(project.archive, hugo=True) == []
