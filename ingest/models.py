"""The values that cross stage boundaries, all frozen, all times in UTC.

    fetch    url ─────────────► Response            (kept as a Document when a post is made of it)
    parse    Response.body ───► ParsedFeed(entries: Entry…)
    decide   Entry + KnownPost ► Outcome         (pure: new / updated / unchanged)
    read     Entry ───────────► FeedContent      (its content cleaned: safe, Hugo-faithful HTML)
    article  Plan + FeedContent ► Article        (or the article page's, cleaned)
    render   Article ─────────► the post's markdown text
    archive  Plan + Article ──► file on disk, KnownPost in the state (Archived)
    pipeline every feed ──────► FeedResult…  ──► RunReport
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxml.html import HtmlElement


def fingerprint(title: str | None, link: str | None, published: datetime | None, content: str) -> str:
    """What an entry's source said, in 16 hex digits: its post is rewritten when this changes."""
    said = json.dumps([title, link, published and published.isoformat(), content], ensure_ascii=False)
    return hashlib.sha256(said.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Validators:
    """HTTP cache validators of a feed, sent back on the next poll."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """A complete HTTP response whose body fitted under the size cap."""

    url: str  # the URL that answered, after redirects (not the one asked for)
    status: int
    content_type: str  # as the server said it, "" when it did not
    body: bytes  # decoded (gzip, deflate) as read: the size cap applies to these bytes
    validators: Validators = Validators()  # to send back on the next request

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True)
class Entry:
    """One feed item, as the feed gave it (content is raw item HTML)."""

    key: str
    title: str
    link: str | None
    published: datetime | None
    updated: datetime | None
    content: str
    author: str | None
    source_hash: str


@dataclass(frozen=True, slots=True)
class FeedContent:
    """An entry's content as its feed gives it, cleaned, with what making its article asks
    of it (`article.read_content`): read ahead, in a worker process when a run has one."""

    head: str | None  # the summary block the feed wrote above the article, if any
    html: str  # the article, cleaned
    wants_page: bool  # whether its article page is to be read instead
    length: int  # characters of its text, white space aside: a page must bring as many
    summary_head: str | None  # the extractive summary's block head, made when the post needs it


@dataclass(frozen=True, slots=True)
class Document:
    """A document as it was received (a feed, an API answer, an article page): what a
    post is made from, kept so that the post can be made again (ingest.kept)."""

    kind: str  # how it is read: "feed", "36kr-flow" or "page"
    asked: str  # the URL asked for (or the file read)
    url: str  # the URL that answered, after redirects
    content_type: str
    body: bytes
    fetched: datetime
    sha256: str = field(init=False)  # of the body, once: a feed's entries all name it

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.body).hexdigest())


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str
    link: str | None
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class PageArticle:
    """The article an article page holds, as found there."""

    url: str
    title: str | None
    html: str
    author: str | None = None
    published: datetime | None = None
    cover: str | None = None
    document: Document | None = None  # the page it was read from
    # The article as parsed from the page, when it was (a <div> holding it), for the cleaner
    # to take as it is; changed by the cleaner, so cleaned once.
    tree: HtmlElement | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ImageOutcome:
    """What became of one image of a post in this run."""

    url: str  # the URL downloaded from
    file: str | None = None  # its name in the post's folder, when archived
    folder: str | None = None  # the post folder (relative to the archive) holding it
    error: str | None = None  # why it stays remote
    downloaded: bool = False  # fetched now, rather than found or copied locally
    final: bool = False  # failed for the last time: no more retries

    @property
    def retry_later(self) -> bool:
        """Failed now, with tries left: a later run must try it again."""
        return bool(self.error) and not self.final


@dataclass(frozen=True, slots=True)
class KnownPost:
    """What the state (or the archive's front matter) knows of an archived entry."""

    key: str
    feed: str
    path: str
    source_hash: str
    date: datetime
    lastmod: datetime


@dataclass(frozen=True, slots=True)
class Article:
    """An entry made ready to render: cleaned HTML, chosen dates, final URLs."""

    key: str
    title: str
    category: str
    date: datetime
    lastmod: datetime
    source_url: str | None
    canonical_url: str | None
    block_html: str
    source_hash: str
    partial: str | None = None  # why the article page could not be used, if it could not
    note: str | None = None  # why the page was not even asked for (a policy, not a failure)
    cover_url: str | None = None  # the article's cover image (its page's, or its first image)
    cover: str | None = None  # the cover's file in the post's folder, once archived
    page: Document | None = None  # the article page read for it, if one was


@dataclass(frozen=True, slots=True)
class Plan:
    """An entry to archive, and where: its date and path are decided before any work."""

    entry: Entry
    known: KnownPost | None
    date: datetime
    path: str
    origin: Document | None = None  # the document the entry was read from
    content: FeedContent | None = None  # its content, read ahead (else read when archived)
    # Made again from kept sources (`ingest rebuild`): the post keeps the source hash and
    # lastmod it was written with, whatever the settings change in how it looks.
    rebuild: bool = False


class Outcome(enum.StrEnum):
    NEW = "new"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"


class FeedStatus(enum.StrEnum):
    OK = "ok"
    NOT_MODIFIED = "not-modified"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Archived:
    """What became of a planned entry."""

    post: KnownPost
    outcome: Outcome
    partial: str | None
    images: tuple[ImageOutcome, ...]
    note: str | None = None


@dataclass(frozen=True, slots=True)
class EntryResult:
    """What became of an entry in a run, as reported and recorded."""

    key: str
    title: str
    outcome: Outcome
    path: str | None = None
    error: str | None = None
    partial: str | None = None
    images: tuple[ImageOutcome, ...] = ()
    note: str | None = None
    owner: str | None = None  # the feed whose post holds this entry, when this entry is not the post

    @property
    def remote_images(self) -> list[ImageOutcome]:
        return [i for i in self.images if i.error]


@dataclass(frozen=True, slots=True)
class FeedResult:
    """What became of a feed in a run: its poll, then each of its entries."""

    name: str
    url: str
    status: FeedStatus
    http_status: int | None = None  # the feed's answer, when one came
    entries: tuple[EntryResult, ...] = ()
    error: str | None = None  # why the feed could not be read, or why a backfill stopped

    def count(self, outcome: Outcome) -> int:
        return sum(1 for e in self.entries if e.outcome is outcome)

    @property
    def partial(self) -> int:
        return sum(1 for e in self.entries if e.partial)

    def written(self) -> list[str]:
        """The paths of the posts this feed's entries wrote."""
        return [e.path for e in self.entries if e.path and e.outcome in (Outcome.NEW, Outcome.UPDATED)]

    def owners(self) -> dict[str, int]:
        """Feed → how many of this feed's entries are archived as that feed's posts."""
        return dict(Counter(e.owner for e in self.entries if e.owner))

    def images(self, *, downloaded: bool | None = None, failed: bool = False) -> int:
        found = [i for e in self.entries for i in e.images]
        if failed:
            return sum(1 for i in found if i.error)
        return sum(1 for i in found if i.file and (downloaded is None or i.downloaded == downloaded))

    @property
    def failed(self) -> bool:
        return self.status is FeedStatus.ERROR or self.count(Outcome.FAILED) > 0 or self.partial > 0

    @property
    def unfinished(self) -> bool:
        """Whether the next run must see the feed's entries again, not a 304.

        Failed and partial entries, and images that failed short of their last
        try: an image failure does not fail the run, but must still be retried.
        """
        return self.failed or any(i.retry_later for e in self.entries for i in e.images)


@dataclass(frozen=True, slots=True)
class RunReport:
    started: datetime
    finished: datetime
    feeds: tuple[FeedResult, ...] = field(default=())
    kept_documents: int = 0  # sources stored by this run (a document kept before is not counted)
    kept_bytes: int = 0  # their size, compressed

    @property
    def exit_code(self) -> int:
        return 1 if any(f.failed for f in self.feeds) else 0
