"""36kr (36氪): article ids, canonical URLs, and the article inside an article page.

One article has many URL forms: ``https://36kr.com/p/<id>``, ``www.`` and
``m.`` hosts, ``eu.36kr.com/zh/p/<id>``, old ``/p/<id>.html`` pages and any of
these with tracking queries (``?f=rss``, ``?ktm_source=feed``). They all name
the same article, so the id is the article's identity everywhere.

An article page (``{site}/p/<id>``) carries the article as JSON in
``<script>window.initialState={…}</script>``, at
``articleDetail.articleDetailData.data`` (``widgetTitle``, ``widgetContent``
HTML, ``summary``, ``author``, ``publishTime`` in ms, ``widgetImage``). When the
state is encrypted (``{"state": "…", "isEncrypt": true}``) the rendered
``div.articleDetailContent`` is read instead. A page with neither is not an
article page at all (a bot wall in disguise, an error page): `NoArticle`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ingest.models import PageArticle

HOSTS = frozenset({"36kr.com", "www.36kr.com", "m.36kr.com", "eu.36kr.com"})
_ARTICLE_PATH = re.compile(r"/(?:[a-z]{2}/)?p/(\d{4,20})(?:\.html)?/?")
_NEWSFLASH_PATH = re.compile(r"/(?:[a-z]{2}/)?newsflashes/(\d{4,20})/?")
_STATE = re.compile(r"window\.initialState\s*=\s*")
_SITE_SUFFIX = re.compile(r"\s*[-_|]\s*36氪.*$")


class NoArticle(Exception):
    """The page holds no article: neither a readable state nor the rendered article."""


def article_id(url: str | None) -> str | None:
    """The article id of any 36kr article URL, or None for anything else."""
    return _match(url, _ARTICLE_PATH)


def is_newsflash(url: str | None) -> bool:
    """36kr newsflashes are whole in the feed: their page holds nothing more."""
    return _match(url, _NEWSFLASH_PATH) is not None


def _match(url: str | None, pattern: re.Pattern[str]) -> str | None:
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https", "") or (parts.hostname or "") not in HOSTS:
        return None
    match = pattern.fullmatch(parts.path)
    return match.group(1) if match else None


def canonical_url(article: str) -> str:
    return f"https://36kr.com/p/{article}"


def page_url(article: str, site: str) -> str:
    return f"{site.rstrip('/')}/p/{article}"


def extract_page(html: str, url: str) -> PageArticle:
    """The article of a 36kr article page; NoArticle if the page holds none."""
    state = initial_state(html)
    data = _article_data(state) if state and not state.get("isEncrypt") else None
    if data and data.get("widgetContent"):
        published = data.get("publishTime")
        return PageArticle(
            url=url,
            title=_str(data.get("widgetTitle")),
            html=str(data["widgetContent"]),
            author=_str(data.get("author")),
            published=datetime.fromtimestamp(published / 1000, UTC)
            if isinstance(published, int | float) and published > 0 else None,
            cover=_str(data.get("widgetImage")),
        )
    return _rendered_article(html, url)


def initial_state(html: str) -> dict[str, Any] | None:
    match = _STATE.search(html)
    if not match:
        return None
    try:
        state, _ = json.JSONDecoder().raw_decode(html, match.end())
    except ValueError:
        return None
    return state if isinstance(state, dict) else None


def _article_data(state: dict[str, Any]) -> dict[str, Any] | None:
    node: Any = state
    for key in ("articleDetail", "articleDetailData", "data"):
        if isinstance(node, str):  # the old site nests JSON documents as strings
            try:
                node = json.loads(node)
            except ValueError:
                return None
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _rendered_article(html: str, url: str) -> PageArticle:
    import lxml.html  # pages only: a run of feeds (of 304s) never loads lxml

    from ingest.clean import has_class, parse_document, visible_text

    if not html.strip():
        raise NoArticle("empty page")
    root = parse_document(html)
    content = next((d for d in root.iter("div") if has_class(d, "articleDetailContent")), None)
    if content is None or not content.text_content().strip():
        raise NoArticle("no article state and no articleDetailContent")
    heading = next((h for h in root.iter("h1") if has_class(h, "article-title")), None)
    if heading is None:
        heading = next(root.iter("title"), None)
    title = _SITE_SUFFIX.sub("", visible_text(heading)) if heading is not None else None
    inner = (content.text or "") + "".join(lxml.html.tostring(c, encoding="unicode") for c in content)
    return PageArticle(url=url, title=title or None, html=inner)


def _str(value: object) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value).strip() else None
