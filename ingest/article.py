"""Entry → Article: the content chosen, cleaned and summarized; dates and URLs fixed.

Content: the feed's, or the article page's when `full_content` asks for it:
`always`, or `auto` when the feed's content looks like a summary (`is_summary`).
36kr newsflashes are never fetched: the feed holds all of one. When the page
cannot be had (blocked, gone, no article in it), the feed's own content is
archived meanwhile and the post is marked incomplete (see the pipeline), so
every later run tries the page again, until the post is whole. A page that
brings less text than the feed is not used.

`lastmod` starts at the post's date (or the feed's updated date, if later) and
moves on when the entry changes: to the feed's updated date when that is
newer, else to the time of the run that saw the change.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from datetime import datetime

import lxml.html

from ingest import summary
from ingest.clean import clean, clean_tree, no_blank_lines, text_length, tree_of, visible_text
from ingest.config import FeedSettings
from ingest.errors import BlockedError, ExtractError, FetchError, RefusedAddressError
from ingest.extract import Pages
from ingest.llm import LLMSummarizer
from ingest.models import Article, Entry, FeedContent, KnownPost
from ingest.scripts import CJK
from ingest.sources import kr36
from ingest.urls import strip_tracking

# The `auto` rule, in reading units (a CJK character or a word of another script
# each): the feed holds a summary when its text is empty or under 60 units, ends
# with a truncation mark, or is under 300 units in at most two paragraphs without
# an image.
SHORT = 60
BRIEF = 300
_UNIT = re.compile(rf"[{CJK}]|[^\W\d_]+|\d+")
_FIRST_IMAGE = re.compile(r'<img[^>]*?\ssrc="(https?://[^"]+)"')
_TRUNCATED = re.compile(
    r"(?:…|\.\.\.|\[…]|\[\.\.\.]|\(more…\)|read more|continue reading|阅读全文|查看全文|继续阅读|展开全文)"
    r"[\s»›>)\]]*\Z", re.IGNORECASE)


def build_article(entry: Entry, settings: FeedSettings, known: KnownPost | None,
                  date: datetime, pages: Pages, llm: LLMSummarizer | None,
                  clock: Callable[[], datetime], content: FeedContent | None = None) -> Article:
    """The article of `entry`, to be filed under `date` (see pipeline.post_date), from its
    `content` read ahead (`read_content`), or read now.

    With strict `pages` a bot wall is raised, not worked around with the feed's content.
    """
    if content is None:
        content = read_content(entry.content, entry.link, settings.full_content, settings.summary)
    html, page_tree = content.html, None
    partial = note = page_cover = page_document = None
    if entry.link and content.wants_page:
        try:
            page = pages.article(entry.link)
            from_page = clean(page.html, page.url) if page.tree is None else clean_tree(page.tree, page.url)
            page_cover, page_document = page.cover, page.document
            if text_length(from_page.tree) >= content.length:
                html, page_tree = from_page.html, from_page.tree
        except (FetchError, ExtractError) as exc:
            if not content.length or (pages.strict and isinstance(exc, BlockedError)):
                raise
            if isinstance(exc, RefusedAddressError):  # asking again would be refused again
                note = f"archived from the feed's content: its page {exc}"
            else:
                partial = str(exc)
    return Article(
        key=entry.key,
        title=entry.title,
        category=settings.feed.name,
        date=date,
        lastmod=_lastmod(entry, date, known, clock),
        source_url=strip_tracking(entry.link) if entry.link else None,
        canonical_url=_canonical(entry),
        block_html=summary.block(_block_head(settings.summary, entry, content, page_tree, llm), html),
        source_hash=entry.source_hash,
        partial=partial,
        note=note,
        cover_url=_cover(page_cover, html),
        page=page_document,
    )


def read_content(content: str, link: str | None, full_content: str, summary_mode: str) -> FeedContent:
    """An entry's `content` (its feed's HTML) cleaned, and what making its article asks of it:
    whether to read its page, how long it is, the summary the post shows when it is the
    article. Pure: a run reads a feed's entries ahead, in a worker process when it has one."""
    head, raw_article = summary.split_block(content)
    # Each HTML is parsed once, by the cleaner: what follows reads the cleaned tree.
    article = clean(raw_article, base_url=link)
    wants_page = _wants_page(full_content, link, article.tree) if link else False
    made = None
    # Made even when the page is wanted: should the page fail (a blocked host fails them all),
    # the post needs it, and it is made here, in the worker, from the tree already cleaned.
    if summary_mode == "extractive" or (summary_mode == "auto" and head is None):
        made = summary.head_from(summary.extractive(article.tree))
    return FeedContent(head, article.html, wants_page, text_length(article.tree), made)


def read_contents(contents: Sequence[tuple[str, str | None]], full_content: str,
                  summary_mode: str) -> list[FeedContent]:
    """`read_content` of each (content, link): one call, one round trip to a worker process."""
    return [read_content(content, link, full_content, summary_mode) for content, link in contents]


def _wants_page(mode: str, link: str, article: lxml.html.HtmlElement) -> bool:
    if mode == "never" or kr36.is_newsflash(link):
        return False
    return mode == "always" or is_summary(article)


def is_summary(article: str | lxml.html.HtmlElement) -> bool:
    """Whether feed content (cleaned: its HTML or its tree) is a summary of the article
    rather than the article."""
    if isinstance(article, str) and not article.strip():
        return True
    root = tree_of(article)
    text = visible_text(root)
    units = len(_UNIT.findall(text))
    if units < SHORT or _TRUNCATED.search(text):
        return True
    paragraphs = len(list(root.iter("p", "li", "blockquote", "pre", "h2", "h3")))
    images = next(root.iter("img"), None)
    return units < BRIEF and paragraphs <= 2 and images is None


def _cover(page_cover: str | None, article_html: str) -> str | None:
    """The article's cover image: its page's, else its first image."""
    if page_cover:
        return page_cover
    match = _FIRST_IMAGE.search(article_html)
    # The attribute as written (`&amp;`): the URL is what the images stage fetches.
    return html.unescape(match.group(1)) if match else None


def _block_head(mode: str, entry: Entry, content: FeedContent, page_tree: lxml.html.HtmlElement | None,
                llm: LLMSummarizer | None) -> str | None:
    """The summary above the article: the feed's own, one made of the article (its page's,
    or the feed's, made ahead), or the LLM's."""
    if mode == "none":
        return None
    if mode == "auto" and content.head is not None:
        return no_blank_lines(content.head)
    if page_tree is None and content.summary_head is not None:
        return content.summary_head
    # The LLM reads the tree the cleaner wrote (its text, as a cache key too): the feed's
    # content is cleaned again for it, which costs little beside asking the LLM.
    article = page_tree if page_tree is not None else \
        clean(summary.split_block(entry.content)[1], base_url=entry.link).tree
    made = llm.summarize(article) if mode == "llm" and llm is not None else None
    return summary.head_from(made or summary.extractive(article))


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
    return strip_tracking(entry.link) if entry.link else None
