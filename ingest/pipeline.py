"""One run: poll every feed, archive what is new or changed, report per feed.

Threads do the slow parts (HTTP, parsing, cleaning, writing); the main thread
alone reads and writes the state and decides, entry by entry, what to do and
where its post goes, so one key is never archived twice in a run.

For each feed, the paths about to be written are journalled (`pending`), in a
transaction; then, once its posts are on disk, they are recorded with the
feed's new validators and the journal entries are cleared, in one transaction
with the other feeds finished meanwhile (`_flush`). A run killed at any point
leaves work that the next run redoes, never work lost.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from ingest import archive
from ingest.config import Config, FeedSettings
from ingest.errors import ArchiveError, BlockedError, HTTPStatusError, IngestError, StateError
from ingest.fetch import RETRY_STATUSES, Fetcher
from ingest.kept import Kept
from ingest.models import (
    Archived,
    Document,
    Entry,
    EntryResult,
    FeedResult,
    FeedStatus,
    ImageOutcome,
    KnownPost,
    Outcome,
    ParsedFeed,
    Plan,
    RunReport,
    Validators,
)
from ingest.state import FeedState, State
from ingest.workqueue import BoundedPool, Offload, spare_cores

if TYPE_CHECKING:
    from ingest.archiver import Archiver

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
# The files of the feeds finished meanwhile are named together (archive.commit_all: a
# sync before, one after, none when they wrote nothing: a 304, an error), then those
# feeds are recorded in one transaction: when this many feeds are finished, or this many
# seconds have passed. The posts of feeds still being read are named then too: a slow
# feed (36kr's pages, one a second) would keep them unnamed to its end, for a kill to lose.
FLUSH_FEEDS = 100
FLUSH_SECONDS = 2.0
# Files a feed's stage holds before they are named, when the feed has not finished by then.
COMMIT_EVERY = 1024
# A run of this many feeds reads them (parses, cleans) in worker processes, one a spare
# core: starting one costs ~0.3 s of CPU and ~40 MB, which a few feeds would not win back.
OFFLOAD_FEEDS = 16
# Entries read in one round trip to a worker process.
READ_BATCH = 32
# Failures that no other feed or entry could survive: they end the run (exit 2).
FATAL = (ArchiveError, StateError)


def decide(entry: Entry, known: KnownPost | None, feed: str) -> Outcome:
    """What archiving `entry` from `feed` would make of its post, from what the state knows
    of its key: unchanged when the entry says what it said, or the post is another feed's."""
    if known is None:
        return Outcome.NEW
    if known.feed != feed or known.source_hash == entry.source_hash:
        return Outcome.UNCHANGED
    return Outcome.UPDATED


def triage(entries: Sequence[Entry], known: Mapping[str, KnownPost], feed: str,
           claimed: Mapping[str, str], *, only_new: bool = False,
           ) -> tuple[list[EntryResult], list[tuple[Entry, KnownPost | None]]]:
    """What each entry of `feed` becomes, from what the state knows of its key (`known`)
    and the keys other feeds are writing in this run (`claimed`, key → feed): the entries
    left as they are, and the work to archive (each entry with its post, if it has one)."""
    results: list[EntryResult] = []
    work: list[tuple[Entry, KnownPost | None]] = []
    seen: set[str] = set()
    for entry in entries:
        post = known.get(entry.key)
        path = post.path if post is not None else None
        if entry.key in seen:
            # The feed gives one identity twice: its first entry is the post, the
            # others never rewrite it (else every run would flip between them).
            results.append(EntryResult(entry.key, entry.title, Outcome.UNCHANGED, path, owner=feed))
            continue
        seen.add(entry.key)
        outcome = decide(entry, post, feed)
        owner = post.feed if post is not None and post.feed != feed else None
        if only_new and post is not None:
            outcome, owner = Outcome.UNCHANGED, None
        if outcome is not Outcome.UNCHANGED and entry.key in claimed:
            # The same article twice in this run: the feed writing it owns it.
            outcome, owner = Outcome.UNCHANGED, claimed[entry.key]
        if outcome is Outcome.UNCHANGED:
            results.append(EntryResult(entry.key, entry.title, outcome, path, owner=owner))
        else:
            work.append((entry, post))
    return results, work


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
    origin: Document | None = None  # the document the entries were read from
    origins: Mapping[str, Document] = field(default_factory=dict)  # an entry's own, by key


def poll_feed(fetcher: Fetcher, settings: FeedSettings, validators: Validators,
              max_bytes: int, clock: Clock, offload: Offload) -> FeedPoll:
    """Fetch and parse one feed (in a worker process, if `offload` has one); every failure
    becomes this feed's error."""
    feed = settings.feed
    try:
        response = fetcher.get(feed.url, max_bytes=max_bytes, validators=validators,
                               headers={"Accept": FEED_ACCEPT})
        if response.not_modified:
            return FeedPoll(FeedStatus.NOT_MODIFIED, 304, validators=validators)
        from ingest.parse import parse_feed  # a run of 304s never parses a feed

        parsed = offload(parse_feed, response.body, response.url, response.content_type)
        document = Document("feed", feed.url, response.url, response.content_type, response.body, clock())
        return FeedPoll(FeedStatus.OK, response.status, parsed, response.validators, origin=document)
    except HTTPStatusError as exc:
        # A status retried already says so; any other refusal gets the advice for its kind.
        advice = FEED_ADVICE.get(exc.status, None if exc.status in RETRY_STATUSES
                                 else "the server refused the request, tried again next run")
        return FeedPoll(FeedStatus.ERROR, exc.status, error=f"{exc}: {advice}" if advice else str(exc))
    except IngestError as exc:
        return FeedPoll(FeedStatus.ERROR, error=str(exc))
    except Exception as exc:  # a parser bug must not take the other feeds down
        log.exception("unexpected failure polling %s", feed.url)
        return FeedPoll(FeedStatus.ERROR, error=f"internal error: {exc!r} ({feed.url})")


def read_ahead(offload: Offload, plans: Sequence[Plan], settings: FeedSettings) -> list[Plan]:
    """`plans` with their entries' contents read (in a worker process, if `offload` has one).
    Should that fail, each entry is read as it is archived, and fails alone."""
    from ingest.article import read_contents

    try:
        contents = offload(read_contents, [(p.entry.content, p.entry.link) for p in plans],
                           settings.full_content, settings.summary)
    except Exception:
        log.debug("reading ahead failed: each entry is read as it is archived", exc_info=True)
        return list(plans)
    return [replace(plan, content=content) for plan, content in zip(plans, contents, strict=True)]


def read_and_archive(offload: Offload, archiver: Archiver, plans: Sequence[Plan], settings: FeedSettings,
                     stage: archive.Stage) -> tuple[list[Plan], list[tuple[Entry, Archived | Exception]]]:
    """Read `plans`' entries ahead (`read_ahead`), then archive at once those whose archiving
    asks nothing of the network (`Archiver.offline`): they would only queue one by
    one for the pool. The others are handed back with their contents, each to be archived in
    a task of its own, waiting on the network beside the others."""
    later: list[Plan] = []
    done: list[tuple[Entry, Archived | Exception]] = []
    for plan in read_ahead(offload, plans, settings):
        if archiver.offline(plan, settings):
            try:
                done.append((plan.entry, archiver.archive(plan, settings, stage)))
            except Exception as exc:  # the entry's, as its own task would have handed it back
                done.append((plan.entry, exc))
        else:
            later.append(plan)
    return later, done


class _Task(enum.Enum):
    """What a task of the run's pool does when it is not archiving one entry: poll a feed, or
    read a batch of entries (and archive those it can, `read_and_archive`)."""

    POLL = "poll"
    READ = "read"


@dataclass
class _Feed:
    """Bookkeeping of one feed while its entries are in flight."""

    settings: FeedSettings
    poll: FeedPoll | None = None
    results: list[EntryResult] = field(default_factory=list)
    posts: list[KnownPost] = field(default_factory=list)
    journalled: list[str] = field(default_factory=list)
    images: list[ImageOutcome] = field(default_factory=list)
    stage: archive.Stage = field(default_factory=archive.Stage)  # its posts, until named
    waiting: int = 0
    record: bool = True
    result: FeedResult | None = None
    validators: Validators | None = None  # recorded with the result


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
        self.kept = Kept(config.kept_sources) if config.kept_sources else None
        self._claimed: dict[str, str] = {}  # entry key → the feed writing its post in this run
        self._polls: dict[str, FeedState] = {}
        self._finished: list[_Feed] = []  # feeds finished, not yet recorded
        self._flushed = time.monotonic()
        self._archiver: Archiver | None = None
        self._on_feed: Callable[[FeedResult], None] | None = None
        self._work: BoundedPool[tuple[int, Entry | _Task]]
        self._offload = Offload(0)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._archiver is not None:
            self._archiver.close()

    def _archiver_for_entries(self) -> Archiver:
        """Made on the first entry to archive: a run of 304s never loads what it needs."""
        if self._archiver is None:
            from ingest.archiver import Archiver

            self._archiver = Archiver(self.config, self.state.path, self.fetcher, self.clock,
                                      kept=self.kept, strict_pages=self.strict_pages)
        return self._archiver

    def execute(self, feeds: tuple[FeedSettings, ...], *, force: bool = False,
                given: Mapping[str, FeedPoll] | None = None,
                on_feed: Callable[[FeedResult], None] | None = None) -> RunReport:
        """Poll `feeds` (or take the polls `given` by feed URL) and archive their entries.

        `on_feed` hears of each feed as soon as it is finished and recorded.
        """
        started = self.clock()
        self._on_feed = on_feed
        jobs = [_Feed(settings) for settings in feeds]
        # Polls finish in any order but are handled in config order, so that when two
        # feeds bring the same new article, the same feed archives it every time. At most
        # `window` feeds are in flight (polled, not yet finished): memory stays flat
        # however many feeds there are.
        window = 2 * self.config.http.workers
        self._polls = self.state.polls()
        self._offload = Offload(spare_cores() if len(feeds) >= OFFLOAD_FEEDS else 0)
        polled: dict[int, FeedPoll] = {}
        begun = handled = finished = 0
        with ThreadPoolExecutor(self.config.http.workers, thread_name_prefix="ingest") as pool:
            self._work = BoundedPool(pool, self.config.http.workers * 4)
            try:
                while finished < len(jobs):
                    while begun < len(jobs) and begun - finished < window:
                        self._begin(jobs[begun], begun, polled, given or {}, force)
                        begun += 1
                    while handled in polled:
                        self._polled(jobs[handled], handled, polled.pop(handled))
                        finished += self._finish_if_done(jobs[handled])
                        handled += 1
                    if self._work.busy:
                        (index, task), future = self._work.next_done()
                        if task is _Task.POLL:
                            polled[index] = future.result()
                        elif task is _Task.READ:
                            later, done = future.result()
                            for entry, outcome in done:
                                self._archived(jobs[index], entry, outcome)
                            self._archive_each(jobs[index], index, later)
                            finished += self._finish_if_done(jobs[index])
                        else:
                            self._archived(jobs[index], task, future.exception() or future.result())
                            finished += self._finish_if_done(jobs[index])
                    if self._flush_due():
                        self._flush([job for job in jobs[:begun] if job.result is None])
                self._flush()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                self._salvage(jobs)
                raise
            finally:
                self._offload.close()
        return RunReport(started=started, finished=self.clock(),
                         feeds=tuple(job.result for job in jobs if job.result),
                         kept_documents=self.kept.documents if self.kept else 0,
                         kept_bytes=self.kept.bytes if self.kept else 0)

    def _flush_due(self) -> bool:
        return len(self._finished) >= FLUSH_FEEDS or time.monotonic() - self._flushed >= FLUSH_SECONDS

    def _flush(self, reading: Sequence[_Feed] = ()) -> None:
        """Name the files of the feeds finished meanwhile, and those written so far by the
        feeds still `reading`, then record the finished feeds: the posts are on disk before
        the state says so (the journal holds the others'). If naming fails, none is recorded."""
        self._flushed = time.monotonic()
        finished, self._finished = self._finished, []
        archive.commit_all(job.stage for job in (*finished, *reading))
        if not finished:
            return
        with self.state.transaction():
            for job in finished:
                for post in job.posts:
                    self.state.record_post(post)
                self.state.record_images(job.images, self.clock())
                self.state.clear_pending(job.journalled)
                if job.record and job.result is not None:
                    self.state.record_feed(job.result, job.validators, self.clock())
        for job in finished:
            job.posts.clear()
            job.images.clear()

    def _salvage(self, jobs: list[_Feed]) -> None:
        """On an error that ends the run: the feeds finished are named and recorded if they
        can be (the disk may be full); what is left is discarded, and journalled: the next
        run writes it again."""
        with contextlib.suppress(ArchiveError, StateError):  # the error raised says what went wrong
            self._flush()
        for job in jobs:
            job.stage.discard()

    def archive_entries(self, settings: FeedSettings, entries: Sequence[Entry],
                        origins: Mapping[str, Document]) -> FeedResult:
        """Archive entries found elsewhere (a backfill's), read from `origins` by key, as the
        entries of one feed polled now: the same decisions, posts and records as `execute`."""
        poll = FeedPoll(FeedStatus.OK, parsed=ParsedFeed(settings.feed.name, None, tuple(entries)),
                        origins=origins)
        return self.execute((settings,), given={settings.feed.url: poll}).feeds[0]

    def _begin(self, job: _Feed, index: int, polled: dict[int, FeedPoll],
               given: Mapping[str, FeedPoll], force: bool) -> None:
        ready = given.get(job.settings.feed.url)
        last = self._polls.get(job.settings.feed.url, FeedState())
        if ready is None and not force:
            ready = self._backing_off(last)
        if ready is not None:  # a poll not made now is not recorded as one
            polled[index] = ready
            job.record = False
            return
        self._work.submit((index, _Task.POLL), poll_feed, self.fetcher, job.settings, last.validators,
                          self.config.http.max_feed_bytes, self.clock, self._offload)

    def _backing_off(self, last: FeedState) -> FeedPoll | None:
        """A feed failing run after run is polled less and less often, never dropped."""
        due = last.next_poll
        if due is None or self.clock() >= due:
            return None
        return FeedPoll(FeedStatus.ERROR, error=(
            f"failed {last.failures} runs in a row, next try after {due:%Y-%m-%d %H:%M} UTC "
            f"(`ingest run --force` tries now); last error: {last.last_error}"))

    def _polled(self, job: _Feed, index: int, poll: FeedPoll) -> None:
        # The entries, and what they were read from, travel with their work, no further.
        job.poll = replace(poll, parsed=None, origin=None, origins={})
        if poll.parsed is None:
            return
        entries = poll.parsed.entries
        known = self.state.known(e.key for e in entries)
        results, work = triage(entries, known, job.settings.feed.name, self._claimed, only_new=self.only_new)
        job.results.extend(results)
        self._claimed.update((entry.key, job.settings.feed.name) for entry, _ in work)
        if not work:
            return
        undated = [e.key for e, k in work if k is None and e.published is None and e.updated is None]
        with self.state.transaction():
            first_seen = self.state.first_seen(undated, self.clock()) if undated else {}
            planned = [self._plan(entry, known_post, first_seen.get(entry.key),
                                  poll.origins.get(entry.key, poll.origin))
                       for entry, known_post in work]
            self.state.add_pending((p.entry.key, p.path) for p in planned)
        job.journalled = [p.entry.key for p in planned]
        job.waiting += len(planned)
        archiver = self._archiver_for_entries()
        for start in range(0, len(planned), READ_BATCH):
            self._work.submit((index, _Task.READ), read_and_archive, self._offload, archiver,
                              planned[start:start + READ_BATCH], job.settings, job.stage)

    def _archive_each(self, job: _Feed, index: int, planned: list[Plan]) -> None:
        archiver = self._archiver_for_entries()
        for plan in planned:
            self._work.submit((index, plan.entry), archiver.archive, plan, job.settings, job.stage)

    @staticmethod
    def _plan(entry: Entry, known: KnownPost | None, first_seen: datetime | None,
              origin: Document | None) -> Plan:
        date = post_date(entry, known, first_seen)
        path = known.path if known else archive.post_path(date, archive.slug_for(entry.key, entry.title))
        return Plan(entry, known, date, path, origin)

    def _archived(self, job: _Feed, entry: Entry, outcome: Archived | BaseException) -> None:
        job.waiting -= 1
        if len(job.stage) >= COMMIT_EVERY:  # a long feed's posts reach the disk as they come
            job.stage.commit()
        try:
            if isinstance(outcome, BaseException):
                raise outcome
            done = outcome
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
                                       partial=done.partial, images=done.images, note=done.note))

    def _finish_if_done(self, job: _Feed) -> bool:
        """Record a feed whose entries are all done; whether it was finished now."""
        if job.poll is None or job.waiting or job.result is not None:
            return False
        feed = job.settings.feed
        result = FeedResult(name=feed.name, url=feed.url, status=job.poll.status,
                            http_status=job.poll.http_status, entries=tuple(job.results),
                            error=job.poll.error)
        # Validators are kept only when nothing is left to finish: what failed must come back.
        job.validators = job.poll.validators if not result.unfinished else None
        job.result = result
        if job.journalled or job.images or job.record:
            self._finished.append(job)  # recorded once its posts are on disk (_flush)
        log.debug("%s: %s", feed.name, result.status.value)
        if self._on_feed is not None:
            self._on_feed(result)
        return True
