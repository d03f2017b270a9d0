"""One run: poll every feed, archive what is new or changed, report per feed.

Threads do the slow parts (HTTP, parsing, cleaning, writing); the main thread
alone reads and writes the state and decides, entry by entry, what to do and
where its post goes, so one key is never archived twice in a run.

For each feed, in one transaction each: the paths about to be written are
journalled (`pending`); then, once its posts are on disk, they are recorded
with the feed's new validators and the journal entries are cleared. A run
killed at any point leaves work that the next run redoes, never work lost.
"""

from __future__ import annotations

import functools
import logging
import queue
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from ingest import archive
from ingest.article import build_article
from ingest.config import Config, FeedSettings
from ingest.errors import ArchiveError, BlockedError, HTTPStatusError, IngestError, StateError
from ingest.extract import Pages
from ingest.fetch import Fetcher
from ingest.images import ImageStore
from ingest.llm import LLMSummarizer
from ingest.models import (
    Action,
    Article,
    Entry,
    EntryResult,
    FeedResult,
    FeedStatus,
    ImageOutcome,
    KnownPost,
    Outcome,
    ParsedFeed,
    RunReport,
    Validators,
)
from ingest.parse import parse_feed
from ingest.render import StaticKeys, render_post
from ingest.state import State, WorkerCache

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8, "
               "*/*;q=0.5")
FEED_ADVICE = {
    401: "the feed needs a login; ingest cannot archive it",
    403: "the server refuses us; check the URL in a browser, or the site blocks robots",
    404: "the feed moved or is gone, fix its url in config.yaml",
    410: "the feed is gone for good; remove it from config.yaml",
}
# Added to a post's source hash while its page or some images could not be had: the
# entry then never looks unchanged, and later runs try again.
INCOMPLETE = "-incomplete"
# Failures that no other feed or entry could survive: they end the run (exit 2).
FATAL = (ArchiveError, StateError)


def decide(entry: Entry, known: KnownPost | None, feed: str) -> Action:
    """Whether an entry needs writing, from what the state knows of its key."""
    if known is None:
        return Action.NEW
    if known.feed != feed:
        return Action.OWNED_ELSEWHERE
    if known.source_hash == entry.source_hash:
        return Action.UNCHANGED
    return Action.UPDATED


def post_date(entry: Entry, known: KnownPost | None, first_seen: datetime | None) -> datetime:
    """A post's date: kept once archived; else published, updated, or first seen."""
    if known is not None:
        return known.date
    date = entry.published or entry.updated or first_seen
    if date is None:
        raise ValueError(f"undated entry {entry.key} has no first-seen time")
    return date


@dataclass(frozen=True, slots=True)
class FeedPoll:
    status: FeedStatus
    http_status: int | None = None
    parsed: ParsedFeed | None = None
    validators: Validators | None = None
    error: str | None = None


def poll_feed(fetcher: Fetcher, settings: FeedSettings, validators: Validators,
              max_bytes: int) -> FeedPoll:
    """Fetch and parse one feed; every failure becomes this feed's error."""
    feed = settings.feed
    try:
        response = fetcher.get(feed.url, max_bytes=max_bytes, validators=validators,
                               headers={"Accept": FEED_ACCEPT})
        if response.not_modified:
            return FeedPoll(FeedStatus.NOT_MODIFIED, 304, validators=validators)
        parsed = parse_feed(response.body, response.url, response.content_type)
        return FeedPoll(FeedStatus.OK, response.status, parsed, response.validators)
    except HTTPStatusError as exc:
        advice = FEED_ADVICE.get(exc.status, "the server refused the request")
        return FeedPoll(FeedStatus.ERROR, exc.status, error=f"{exc}: {advice}")
    except IngestError as exc:
        return FeedPoll(FeedStatus.ERROR, error=str(exc))
    except Exception as exc:  # a parser bug must not take the other feeds down
        log.exception("unexpected failure polling %s", feed.url)
        return FeedPoll(FeedStatus.ERROR, error=f"internal error: {exc!r} ({feed.url})")


@dataclass
class _Feed:
    """Bookkeeping of one feed while its entries are in flight."""

    settings: FeedSettings
    poll: FeedPoll | None = None
    results: list[EntryResult] = field(default_factory=list)
    posts: list[KnownPost] = field(default_factory=list)
    journalled: list[str] = field(default_factory=list)
    images: list[ImageOutcome] = field(default_factory=list)
    waiting: int = 0
    record: bool = True
    result: FeedResult | None = None


def _same_post(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        return False


class _Work:
    """A thread pool fed at most `limit` tasks at a time, answering as tasks finish.

    Waiting on a queue costs O(1) per finished task where `concurrent.futures.wait`
    over all pending futures costs O(pending); holding back the rest keeps memory
    flat however many entries a feed brings.
    """

    def __init__(self, pool: ThreadPoolExecutor, limit: int) -> None:
        self._pool = pool
        self._limit = limit
        self._running = 0
        self._backlog: deque[tuple[_Tag, Callable[..., Any], tuple[Any, ...]]] = deque()
        self._done: queue.SimpleQueue[tuple[_Tag, Future[Any]]] = queue.SimpleQueue()

    @property
    def busy(self) -> bool:
        return bool(self._running or self._backlog)

    def submit(self, tag: _Tag, fn: Callable[..., Any], *args: Any) -> None:
        self._backlog.append((tag, fn, args))
        self._fill()

    def next_done(self) -> tuple[_Tag, Future[Any]]:
        tag, future = self._done.get()
        self._running -= 1
        self._fill()
        return tag, future

    def _fill(self) -> None:
        while self._backlog and self._running < self._limit:
            tag, fn, args = self._backlog.popleft()
            future = self._pool.submit(fn, *args)
            self._running += 1
            future.add_done_callback(functools.partial(self._finished, tag))

    def _finished(self, tag: _Tag, future: Future[Any]) -> None:
        self._done.put((tag, future))


_Tag = tuple[int, "Entry | None"]


@dataclass(frozen=True, slots=True)
class _Archived:
    post: KnownPost
    outcome: Outcome
    partial: str | None
    images: tuple[ImageOutcome, ...]


@dataclass(frozen=True, slots=True)
class _Job:
    entry: Entry
    known: KnownPost | None
    date: datetime
    path: str


class Run:
    """Archiving the entries of feeds: `ingest run` polls them, backfill hands them over.

    With `only_new`, an entry archived before is left as it is, whatever changed.
    With `strict_pages`, an article page behind a bot wall fails its entry (and is
    noted in `blocked`) instead of archiving the feed's content meanwhile.
    """

    def __init__(self, config: Config, state: State, fetcher: Fetcher, clock: Clock, *,
                 only_new: bool = False, strict_pages: bool = False) -> None:
        self.config = config
        self.state = state
        self.fetcher = fetcher
        self.clock = clock
        self.only_new = only_new
        self.strict_pages = strict_pages
        self.blocked: str | None = None
        self._claimed: set[str] = set()
        self._static = StaticKeys(config.front_matter)
        self._pages = Pages(fetcher, kr36_site=config.sources.kr36.site,
                            max_bytes=config.http.max_page_bytes)
        self._cache = WorkerCache(state.path)
        self._images = ImageStore(fetcher, config.archive_dir, self._cache,
                                  max_bytes=config.http.max_image_bytes)
        self._llm = LLMSummarizer(fetcher, config.summary_llm, self._cache, clock) \
            if config.summary_llm else None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self._images.close()
        self._cache.close()
        self._work: _Work

    def execute(self, feeds: tuple[FeedSettings, ...], *, force: bool = False,
                given: Mapping[str, FeedPoll] | None = None) -> RunReport:
        """Poll `feeds` (or take the polls `given` by feed URL) and archive their entries."""
        started = self.clock()
        jobs = [_Feed(settings) for settings in feeds]
        # Polls finish in any order but are handled in config order, so that when two
        # feeds bring the same new article, the same feed archives it every time.
        polled: dict[int, FeedPoll] = {}
        handled = 0
        with ThreadPoolExecutor(self.config.http.workers, thread_name_prefix="ingest") as pool:
            self._work = _Work(pool, self.config.http.workers * 4)
            for index, job in enumerate(jobs):
                ready = (given or {}).get(job.settings.feed.url)
                if ready is None and not force:
                    ready = self._backing_off(job)
                if ready is not None:  # a poll not made now is not recorded as one
                    polled[index] = ready
                    job.record = False
                    continue
                self._work.submit((index, None), poll_feed, self.fetcher, job.settings,
                                  self.state.validators(job.settings.feed.url),
                                  self.config.http.max_feed_bytes)
            try:
                while self._work.busy or handled in polled:
                    if self._work.busy:
                        (index, entry), future = self._work.next_done()
                        if entry is None:
                            polled[index] = future.result()
                        else:
                            self._archived(jobs[index], entry, future)
                            self._finish_if_done(jobs[index])
                    while handled in polled:
                        self._polled(jobs[handled], handled, polled.pop(handled))
                        self._finish_if_done(jobs[handled])
                        handled += 1
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return RunReport(started=started, finished=self.clock(),
                         feeds=tuple(job.result for job in jobs if job.result))

    def _backing_off(self, job: _Feed) -> FeedPoll | None:
        """A feed failing run after run is polled less and less often, never dropped."""
        failures, due, last_error = self.state.backoff(job.settings.feed.url)
        if due is None or self.clock() >= due:
            return None
        return FeedPoll(FeedStatus.ERROR, error=(
            f"failed {failures} runs in a row, next try after {due:%Y-%m-%d %H:%M} UTC "
            f"(`ingest run --force` tries now); last error: {last_error}"))

    def _polled(self, job: _Feed, index: int, poll: FeedPoll) -> None:
        job.poll = poll
        if poll.parsed is None:
            return
        entries = poll.parsed.entries
        known = self.state.known(e.key for e in entries)
        name = job.settings.feed.name
        work: list[tuple[Entry, KnownPost | None]] = []
        for entry in entries:
            action = decide(entry, known.get(entry.key), name)
            if self.only_new and entry.key in known:
                action = Action.UNCHANGED
            if action in (Action.NEW, Action.UPDATED) and entry.key in self._claimed:
                action = Action.OWNED_ELSEWHERE  # the same article twice in this run
            if action in (Action.NEW, Action.UPDATED):
                self._claimed.add(entry.key)
                work.append((entry, known.get(entry.key)))
            else:
                path = known[entry.key].path if entry.key in known else None
                job.results.append(EntryResult(entry.key, entry.title, Outcome.UNCHANGED, path))
        if not work:
            return
        undated = [e.key for e, k in work if k is None and e.published is None and e.updated is None]
        with self.state.transaction():
            first_seen = self.state.first_seen(undated, self.clock()) if undated else {}
            planned = [self._plan(entry, known_post, first_seen.get(entry.key))
                       for entry, known_post in work]
            self.state.add_pending((p.entry.key, p.path) for p in planned)
        job.journalled = [p.entry.key for p in planned]
        for plan in planned:
            job.waiting += 1
            self._work.submit((index, plan.entry), self._archive_entry, plan, job.settings)

    @staticmethod
    def _plan(entry: Entry, known: KnownPost | None, first_seen: datetime | None) -> _Job:
        date = post_date(entry, known, first_seen)
        path = known.path if known else archive.post_path(date, archive.slug_for(entry.key, entry.title))
        return _Job(entry, known, date, path)

    def _archive_entry(self, job: _Job, settings: FeedSettings) -> _Archived:
        article = build_article(job.entry, settings, job.known, job.date, self._pages, self._llm,
                                self.clock, strict_pages=self.strict_pages)
        images: list[ImageOutcome] = []
        if settings.images:
            article, images = self._with_images(article, PurePosixPath(job.path).parent.as_posix())
        retry = article.partial is not None or any(i.error and not i.final for i in images)
        article = replace(article, source_hash=article.source_hash + (INCOMPLETE if retry else ""))
        target = self.config.archive_dir / job.path
        if job.known is not None and _same_post(target, render_post(
                replace(article, lastmod=job.known.lastmod), self._static)):
            # Nothing shown changed (a page still blocked, a field we do not render): no churn.
            post = replace(job.known, source_hash=article.source_hash)
            return _Archived(post, Outcome.UNCHANGED, article.partial, tuple(images))
        archive.write_atomic(target, render_post(article, self._static).encode())
        post = KnownPost(key=article.key, feed=settings.feed.name, path=job.path,
                         source_hash=article.source_hash, date=article.date, lastmod=article.lastmod)
        outcome = Outcome.UPDATED if job.known else Outcome.NEW
        return _Archived(post, outcome, article.partial, tuple(images))

    def _with_images(self, article: Article, folder: str) -> tuple[Article, list[ImageOutcome]]:
        block, images = self._images.localize(article.block_html, folder, article.source_url)
        cover = None
        if self.config.cover == "article" and article.cover_url:
            found = self._images.archive(article.cover_url, folder, article.source_url)
            cover = found.file
            if found.url not in {i.url for i in images}:
                images.append(found)
        return replace(article, block_html=block, cover=cover), images

    def _archived(self, job: _Feed, entry: Entry, future: Future[_Archived]) -> None:
        job.waiting -= 1
        try:
            done = future.result()
        except FATAL:
            raise
        except BlockedError as exc:
            self.blocked = self.blocked or str(exc)
            job.results.append(EntryResult(entry.key, entry.title, Outcome.FAILED, error=str(exc)))
            return
        except IngestError as exc:
            job.results.append(EntryResult(entry.key, entry.title, Outcome.FAILED, error=str(exc)))
            return
        except Exception as exc:  # one hostile entry must not take the run down
            log.exception("unexpected failure archiving %s", entry.key)
            job.results.append(EntryResult(entry.key, entry.title, Outcome.FAILED,
                                           error=f"internal error: {exc!r}"))
            return
        job.posts.append(done.post)
        job.images.extend(done.images)
        job.results.append(EntryResult(entry.key, entry.title, done.outcome, done.post.path,
                                       partial=done.partial, images=done.images))

    def _finish_if_done(self, job: _Feed) -> None:
        if job.poll is None or job.waiting or job.result is not None:
            return
        feed = job.settings.feed
        result = FeedResult(name=feed.name, url=feed.url, status=job.poll.status,
                            http_status=job.poll.http_status, entries=tuple(job.results),
                            error=job.poll.error)
        # Validators are kept only when nothing failed: a failed entry must come back.
        keep = job.poll.validators if not result.failed else None
        with self.state.transaction():
            for post in job.posts:
                self.state.record_post(post)
            self.state.record_images(job.images, self.clock())
            self.state.clear_pending(job.journalled)
            if job.record:
                self.state.record_feed(result, keep, self.clock())
        job.result = result
        log.info("%s: %s", feed.name, result.status.value)
