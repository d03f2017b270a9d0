"""Entry → Article: the content chosen, cleaned and summarized; dates and URLs fixed.

`lastmod` starts at the post's date (or the feed's updated date, if later) and
moves on when the entry changes: to the feed's updated date when that is
newer, else to the time of the run that saw the change.
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
                  date: datetime, fetcher: Fetcher, clock: Callable[[], datetime]) -> Article:
    """The article of `entry`, to be filed under `date` (see pipeline.post_date)."""
    head, raw_article = summary.split_block(entry.content)
    article_html = clean_html(raw_article, base_url=entry.link)
    block_head = _block_head(settings.summary, head, article_html)
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
