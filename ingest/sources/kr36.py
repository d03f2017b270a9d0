"""36kr (36氪): article ids and canonical URLs.

One article has many URL forms: ``https://36kr.com/p/<id>``, ``www.`` and
``m.`` hosts, ``eu.36kr.com/zh/p/<id>``, old ``/p/<id>.html`` pages and any of
these with tracking queries (``?f=rss``, ``?ktm_source=feed``). They all name
the same article, so the id is the article's identity everywhere.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

HOSTS = frozenset({"36kr.com", "www.36kr.com", "m.36kr.com", "eu.36kr.com"})
_ARTICLE_PATH = re.compile(r"/(?:[a-z]{2}/)?p/(\d{4,20})(?:\.html)?/?")


def article_id(url: str | None) -> str | None:
    """The article id of any 36kr article URL, or None for anything else."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https", "") or (parts.hostname or "") not in HOSTS:
        return None
    match = _ARTICLE_PATH.fullmatch(parts.path)
    return match.group(1) if match else None


def canonical_url(article: str) -> str:
    return f"https://36kr.com/p/{article}"
