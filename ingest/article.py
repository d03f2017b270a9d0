"""Entry → Article: the content chosen, cleaned and summarized; dates and URLs fixed.

Dates: a post is dated by the entry's publish date, else its updated date,
else the time the entry was first seen (kept in the state, so a rerun files
it in the same place). An archived post keeps its date and path for good;
`lastmod` moves on when the entry changes: to the feed's updated date when
that is newer, else to the time of the run that saw the change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ingest import summary
from ingest.clean import clean_html, no_blank_lines
from ingest.config import FeedSettings
from ingest.fetch import Fetcher
from ingest.models import Article, Entry, KnownPost
from ingest.sources import kr36


def build_article(entry: Entry, settings: FeedSettings, known: KnownPost | None,
                  first_seen: datetime | None, fetcher: Fetcher,
                  clock: Callable[[], datetime]) -> Article:
    head, raw_article = summary.split_block(entry.content)
    article_html = clean_html(raw_article, base_url=entry.link)
    block_head = _block_head(settings.summary, head, article_html)
    date = known.date if known else entry.published or entry.updated or first_seen or clock()
    return Article(
        key=entry.key,
        title=entry.title,
        category=settings.feed.name,
        date=date,
        lastmod=_lastmod(entry, date, known, clock),
        source_url=entry.link,
        canonical_url=_canonical(entry),
        block_html=summary.block(block_head, article_html),
        source_hash=entry.source_hash,
    )


def _block_head(mode: str, feed_head: str | None, article_html: str) -> str | None:
    if mode == "none":
        return None
    if mode == "auto" and feed_head is not None:
        return no_blank_lines(feed_head)
    return summary.head_from(summary.extractive(article_html))


def _lastmod(entry: Entry, date: datetime, known: KnownPost | None,
             clock: Callable[[], datetime]) -> datetime:
    if known is None:
        return entry.updated if entry.updated and entry.updated > date else date
    if entry.updated and entry.updated > known.lastmod:
        return entry.updated
    return clock()


def _canonical(entry: Entry) -> str | None:
    if entry.key.startswith("36kr:"):
        return kr36.canonical_url(entry.key.removeprefix("36kr:"))
    return entry.link
