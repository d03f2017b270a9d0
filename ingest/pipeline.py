"""One run: poll every feed, archive what is new or changed, report per feed.

Threads do the slow parts (HTTP, parsing, cleaning, writing); the main thread
alone reads and writes the state and decides, entry by entry, what to do, so
one key is never archived twice in a run. A feed's validators and its
entries' records are committed together, after its posts are on disk: a run
killed at any point leaves work that the next run redoes, never work lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ingest import archive
from ingest.article import build_article
from ingest.config import Config, FeedSettings
from ingest.errors import ArchiveError, IngestError, StateError
from ingest.fetch import Fetcher
from ingest.models import (
    Action,
    Entry,
    EntryResult,
    FeedResult,
    FeedStatus,
    KnownPost,
    Outcome,
    ParsedFeed,
    RunReport,
    Validators,
)
from ingest.parse import parse_feed
from ingest.render import render_post
from ingest.state import State

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5"
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
    except IngestError as exc:
        status = getattr(exc, "status", None)
        return FeedPoll(FeedStatus.ERROR, status, error=str(exc))
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
    waiting: int = 0
    result: FeedResult | None = None


class Run:
    """The work of one `ingest run` over the configured feeds."""

    def __init__(self, config: Config, state: State, fetcher: Fetcher, clock: Clock) -> None:
        self.config = config
        self.state = state
        self.fetcher = fetcher
        self.clock = clock
        self._claimed: set[str] = set()

    def execute(self, feeds: tuple[FeedSettings, ...]) -> RunReport:
        started = self.clock()
        jobs = [_Feed(settings) for settings in feeds]
        # Polls finish in any order but are handled in config order, so that when two
        # feeds bring the same new article, the same feed archives it every time.
        polled: dict[int, FeedPoll] = {}
        handled = 0
        with ThreadPoolExecutor(self.config.http.workers, thread_name_prefix="ingest") as pool:
            pending: dict[Future[Any], tuple[int, Entry | None]] = {
                pool.submit(poll_feed, self.fetcher, job.settings,
                            self.state.validators(job.settings.feed.url),
                            self.config.http.max_feed_bytes): (index, None)
                for index, job in enumerate(jobs)
            }
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        index, entry = pending.pop(future)
                        if entry is None:
                            polled[index] = future.result()
                        else:
                            self._archived(jobs[index], entry, future)
                            self._finish_if_done(jobs[index])
                    while handled in polled:
                        self._polled(jobs[handled], handled, polled.pop(handled), pool, pending)
                        self._finish_if_done(jobs[handled])
                        handled += 1
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return RunReport(started=started, finished=self.clock(),
                         feeds=tuple(job.result for job in jobs if job.result))

    def _polled(self, job: _Feed, index: int, poll: FeedPoll, pool: ThreadPoolExecutor,
                pending: dict[Future[Any], tuple[int, Entry | None]]) -> None:
        job.poll = poll
        if poll.parsed is None:
            return
        entries = poll.parsed.entries
        known = self.state.known(e.key for e in entries)
        first_seen = self._first_seen([e for e in entries if e.key not in known])
        name = job.settings.feed.name
        for entry in entries:
            action = decide(entry, known.get(entry.key), name)
            if action in (Action.NEW, Action.UPDATED) and entry.key in self._claimed:
                action = Action.OWNED_ELSEWHERE  # the same article twice in this run
            if action in (Action.UNCHANGED, Action.OWNED_ELSEWHERE):
                job.results.append(EntryResult(entry.key, entry.title, Outcome.UNCHANGED,
                                               known[entry.key].path if entry.key in known else None))
                continue
            self._claimed.add(entry.key)
            job.waiting += 1
            future = pool.submit(self._archive_entry, entry, job.settings, known.get(entry.key),
                                 first_seen.get(entry.key))
            pending[future] = (index, entry)

    def _first_seen(self, entries: list[Entry]) -> dict[str, datetime]:
        """When undated entries were first seen: it dates their posts, so it is kept."""
        undated = [e.key for e in entries if e.published is None and e.updated is None]
        if not undated:
            return {}
        with self.state.transaction():
            return self.state.first_seen(undated, self.clock())

    def _archive_entry(self, entry: Entry, settings: FeedSettings, known: KnownPost | None,
                       first_seen: datetime | None) -> tuple[KnownPost, Outcome]:
        article = build_article(entry, settings, known, first_seen, self.fetcher, self.clock)
        path = known.path if known else archive.post_path(
            article.date, archive.slug_for(article.key, article.title))
        text = render_post(article, self.config.front_matter)
        archive.write_atomic(self.config.archive_dir / path, text.encode())
        post = KnownPost(key=article.key, feed=settings.feed.name, path=path,
                         source_hash=article.source_hash, date=article.date, lastmod=article.lastmod)
        return post, Outcome.UPDATED if known else Outcome.NEW

    def _archived(self, job: _Feed, entry: Entry, future: Future[tuple[KnownPost, Outcome]]) -> None:
        job.waiting -= 1
        try:
            post, outcome = future.result()
        except FATAL:
            raise
        except IngestError as exc:
            job.results.append(EntryResult(entry.key, entry.title, Outcome.FAILED, error=str(exc)))
            return
        except Exception as exc:  # one hostile entry must not take the run down
            log.exception("unexpected failure archiving %s", entry.key)
            job.results.append(EntryResult(entry.key, entry.title, Outcome.FAILED,
                                           error=f"internal error: {exc!r}"))
            return
        job.posts.append(post)
        job.results.append(EntryResult(entry.key, entry.title, outcome, post.path))

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
            self.state.record_feed(result, keep, self.clock())
        job.result = result
        log.info("%s: %s", feed.name, result.status.value)
