"""Which generic extractor keeps the article, and only it? Measured, not guessed.

Pages are built from the full articles of the shared corpus feeds, wrapped in
five kinds of site chrome (tests/sitechrome.py). Each extractor's output is
scored against the article:

    recall     share of the article's words found in the output
    precision  share of the output's words that belong to the article
    images / headings / lists / tables / code / links  share of each kept

`ingest` is what ingest ships: readability-lxml only locates the article; its
original subtree is kept whole (footnotes, link lists, code) and chrome pruned.

Run: .venv/bin/python -m bench.extractors   (needs ../shared and the `bench` extra)
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import PurePosixPath

import feedparser
import lxml.html

from ingest.clean import parse_document, resolve_lazy_images
from ingest.extract import count_words, extract_generic
from ingest.summary import split_block
from tests.conftest import CORPUS
from tests.sitechrome import STYLES, page

FEEDS = ["hugo-g0f/upstream-feeds/brett-terpstra.xml", "hugo-g0f/upstream-feeds/byte-tank.xml",
         "hugo-g0f/upstream-feeds/ifanr.xml", "hugo-g0f/upstream-feeds/steph-ango.xml",
         "other/rbren-rss-parser/content-encoded.rss", "other/rbren-rss-parser/many-links.rss",
         "36kr/WuCoding-tinyxml2/36kr.xml",
         "36kr/ArnoFrost-RSS-GPT/36kr-ai.poll1.20231110T014624Z.96fea292.xml"]
KINDS = ("images", "headings", "lists", "tables", "code", "links")


def words(fragment: str) -> Counter[str]:
    if not fragment.strip():
        return Counter()
    return count_words(lxml.html.fragment_fromstring(fragment, create_parent="div").text_content())


def features(fragment: str) -> dict[str, Counter[str]]:
    if not fragment.strip():
        return {kind: Counter() for kind in KINDS}
    root = lxml.html.fragment_fromstring(fragment, create_parent="div")

    def texts(*tags: str, size: int = 40) -> Counter[str]:
        return Counter(" ".join(e.text_content().split())[:size] for e in root.iter(*tags))

    return {
        "images": Counter(PurePosixPath(i.get("src", "")).name for i in root.iter("img") if i.get("src")),
        "headings": texts("h2", "h3", "h4", "h5"),
        "lists": texts("li"),
        "tables": texts("td", "th"),
        "code": texts("pre", size=60),
        "links": Counter(a.get("href", "") for a in root.iter("a") if a.get("href")),
    }


def kept(want: Counter[str], got: Counter[str]) -> float | None:
    total = sum(want.values())
    return None if total == 0 else sum((want & got).values()) / total


def prepared(html: str) -> str:
    """The page as ingest hands it to an extractor: lazy images resolved, scripts gone."""
    root = parse_document(html)
    for element in list(root.iter("script", "style")):
        element.drop_tree()
    resolve_lazy_images(root)
    return str(lxml.html.tostring(root, encoding="unicode"))


def with_trafilatura(html: str, url: str) -> str:
    import trafilatura

    return trafilatura.extract(prepared(html), url=url, output_format="html", include_images=True,
                               include_links=True, include_tables=True, include_formatting=True,
                               include_comments=False, favor_recall=True) or ""


def with_readability(html: str, url: str) -> str:
    from readability import Document

    return str(Document(prepared(html), url=url).summary(html_partial=True))


def with_ingest(html: str, url: str) -> str:
    return extract_generic(html, url).html


EXTRACTORS: dict[str, Callable[[str, str], str]] = {
    "trafilatura": with_trafilatura,
    "readability-lxml": with_readability,
    "ingest": with_ingest,
}


def corpus_articles() -> list[tuple[str, str, str]]:
    """(title, link, article HTML) of every corpus item with a real article in it."""
    articles = []
    for name in FEEDS:
        data = feedparser.parse((CORPUS / name).read_bytes(), sanitize_html=False)
        for entry in data.entries:
            contents = [c.value for c in entry.get("content", [])] + [entry.get("summary", "")]
            article = split_block(max(contents, key=len))[1]  # RSS-GPT's block is no part of a page
            if sum(words(article).values()) > 80:
                articles.append((entry.get("title", ""), entry.get("link", "https://x.example/"), article))
    return articles


def score(extract: Callable[[str, str], str], articles: list[tuple[str, str, str]]) -> dict[str, float]:
    scores: dict[str, list[float]] = {k: [] for k in ("recall", "precision", *KINDS)}
    elapsed = 0.0
    for title, url, article in articles:
        for style in range(STYLES):
            html = page(title, article, style)
            started = time.perf_counter()
            out = extract(html, url)
            elapsed += time.perf_counter() - started
            want, got = words(article), words(out)
            scores["recall"].append(kept(want, got) or 0.0)
            scores["precision"].append(sum((want & got).values()) / max(1, sum(got.values())))
            expected, found = features(article), features(out)
            for kind in KINDS:
                value = kept(expected[kind], found[kind])
                if value is not None:
                    scores[kind].append(value)
    result = {k: statistics.mean(v) for k, v in scores.items() if v}
    result["ms/page"] = elapsed / (STYLES * len(articles)) * 1000
    return result


def main() -> int:
    if not CORPUS.is_dir():
        print(f"{CORPUS} is absent: nothing to measure")
        return 0
    articles = corpus_articles()
    print(f"{len(articles)} articles x {STYLES} page styles = {STYLES * len(articles)} pages\n")
    columns = ("recall", "precision", *KINDS, "ms/page")
    print(f"{'extractor':<18}" + "".join(f"{c:>10}" for c in columns))
    for name, extract in EXTRACTORS.items():
        result = score(extract, articles)
        print(f"{name:<18}" + "".join(f"{result[c]:>10.3f}" for c in columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
