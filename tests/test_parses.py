"""Each article's HTML is parsed once by the cleaner, and what follows reads its tree: counted
at lxml's entry points over whole runs, on 40 articles from their pages and 40 from a feed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lxml import etree

from tests.conftest import DATA, Project
from tests.loopback import Loopback
from tests.test_images import PNG

ARTICLES = 40
IDS = [str(3_300_000_000_000_000 + i) for i in range(ARTICLES)]


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The parses made, by the lxml entry point each went through."""
    made: list[str] = []

    def counted(name: str, parse: Callable[..., Any]) -> Callable[..., Any]:
        def counting(*args: Any, **kwargs: Any) -> Any:
            made.append(name)
            return parse(*args, **kwargs)
        return counting

    for name in ("fromstring", "HTML", "XML", "parse", "fromstringlist"):
        monkeypatch.setattr(etree, name, counted(name, getattr(etree, name)))
    yield made


def run(project: Project, server: Loopback, feed: str, parses: list[str], **settings: Any) -> int:
    server.route("/feed", feed)
    server.route("/img/a.png", PNG, content_type="image/png")
    project.configure([{"name": "pages", "url": server.url("/feed")}], images=True,
                      sources={"36kr": {"site": server.base, "delay": 0}}, **settings)
    parses.clear()  # what configuring and serving made is not the run's
    code, out = project.run()
    assert code == 0, out
    assert len(project.posts()) == ARTICLES
    return len(parses)


def items(server: Loopback, content: str) -> str:
    return ('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>' + "".join(
        f"<item><title>Story {i}</title><link>{server.url(f'/story/{i}')}</link><guid>{i}</guid>"
        f"<pubDate>Fri, 31 Oct 2025 12:28:28 GMT</pubDate><description><![CDATA[{content}]]></description>"
        "</item>" for i in IDS) + "</channel></rss>")


def test_an_article_from_its_page_is_parsed_at_most_four_times(project: Project, server: Loopback,
                                                                parses: list[str]) -> None:
    article = (DATA / "pages" / "generic-article.html").read_text(encoding="utf-8")
    article = article.replace("{{BASE}}", server.base).replace(
        "</p>", f'</p><p><img src="{server.url("/img/a.png")}"></p>', 1)
    for i in IDS:
        server.route(f"/story/{i}", article, content_type="text/html; charset=utf-8")
    feed = items(server, "A line of summary.")
    # Feed content, page, readability's own container, images: four.
    assert run(project, server, feed, parses, full_content="auto", summary="extractive") <= 4 * ARTICLES


def test_an_article_from_the_feed_is_parsed_at_most_twice(project: Project, server: Loopback,
                                                          parses: list[str]) -> None:
    body = "".join(f"<p>Paragraph {n} of a story long enough to be the whole article, not a summary of "
                   "it, with sentences that end.</p>" for n in range(8))
    feed = items(server, f'{body}<p><img src="{server.url("/img/a.png")}"></p>')
    # Feed content, images: two.
    assert run(project, server, feed, parses, full_content="auto", summary="extractive") <= 2 * ARTICLES
