"""What runs remember between them, in SQLite (WAL) under state_dir, and who is running.

    feeds       url → validators, the last poll's outcome, consecutive failures
    entries     entry key → post path, source hash, dates, owning feed
    first_seen  entry key → when an undated entry was first seen (its post's date)
    pending     entry key → post path, for posts being written right now
    images      image URL → its file name and a post folder holding it, or its failures
    summaries   hash of model and article text → the summary an LLM made of it
    backfills   a backfill command → its cursor and counts, so it can resume

The state is a cache of the archive, never the only copy of anything: when
the database is missing or unreadable, it is rebuilt from the posts' front
matter, so nothing is duplicated and no byte of the archive changes.

A post is recorded in `entries` only after it is on disk. Before posts are
written their paths go to `pending`, committed; a run killed mid-write leaves
them there, and the next run (`recover`) cleans those folders of temp files
and records what reached the disk. No scan of the archive is ever needed.

The main thread alone records feeds, entries and the journal. Worker threads
read the images and summaries tables through a connection of their own
(`WorkerCache`).

One run at a time: see `ingest.lock`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from ingest import archive
from ingest.errors import StateError
from ingest.models import FeedResult, FeedStatus, ImageOutcome, KnownPost, Validators

log = logging.getLogger(__name__)

DB_NAME = "state.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT = 10.0
# A feed failing this many runs in a row waits before its next poll: 30 minutes,
# doubling with each further failure, never more than a day.
BACKOFF_AFTER = 3
BACKOFF_FIRST = timedelta(minutes=30)
BACKOFF_MAX = timedelta(days=1)
_SCHEMA = (resources.files("ingest") / "state.sql").read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class FeedState:
    """A feed's validators and its run of failures, as its last poll left them."""

    validators: Validators = field(default_factory=Validators)
    failures: int = 0
    last_attempt: datetime | None = None
    last_error: str | None = None

    @property
    def next_poll(self) -> datetime | None:
        """When a feed failing run after run is due again; None when it is due now."""
        if self.failures < BACKOFF_AFTER or self.last_attempt is None:
            return None
        wait: timedelta = min(BACKOFF_FIRST * 2 ** (self.failures - BACKOFF_AFTER), BACKOFF_MAX)
        return self.last_attempt + wait


class State:
    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            with self._db:
                yield
        except sqlite3.Error as exc:
            raise _state_error(self.path, exc) from exc

    def polls(self) -> dict[str, FeedState]:
        """What the last poll of every feed left: read once a run, not once a feed."""
        rows = self._query("SELECT url, etag, last_modified, failures, last_attempt, last_error FROM feeds")
        return {url: FeedState(Validators(etag, modified), failures,
                               datetime.fromisoformat(attempt) if attempt else None, error)
                for url, etag, modified, failures, attempt, error in rows}

    def record_feed(self, result: FeedResult, validators: Validators | None, now: datetime) -> None:
        """Store a poll's outcome; validators only when every entry was archived."""
        ok = result.status is not FeedStatus.ERROR
        self._db.execute(
            """INSERT INTO feeds (url, name, last_status, http_status, last_attempt, last_success,
                                  last_error, failures, failing_since)
               VALUES (:url, :name, :status, :http, :now, CASE WHEN :ok THEN :now END, :error,
                       CASE WHEN :ok THEN 0 ELSE 1 END, CASE WHEN :ok THEN NULL ELSE :now END)
               ON CONFLICT (url) DO UPDATE SET
                   name = :name, last_status = :status, http_status = :http, last_attempt = :now,
                   last_success = CASE WHEN :ok THEN :now ELSE last_success END,
                   last_error = :error,
                   failures = CASE WHEN :ok THEN 0 ELSE failures + 1 END,
                   failing_since = CASE WHEN :ok THEN NULL ELSE coalesce(failing_since, :now) END""",
            {"url": result.url, "name": result.name, "status": result.status.value,
             "http": result.http_status, "now": iso_utc(now), "ok": ok, "error": result.error},
        )
        if validators is not None:
            self._db.execute("UPDATE feeds SET etag = ?, last_modified = ? WHERE url = ?",
                             (validators.etag, validators.last_modified, result.url))

    def known(self, keys: Iterable[str]) -> dict[str, KnownPost]:
        columns = "key, feed, path, source_hash, date, lastmod"
        return {row[0]: KnownPost(row[0], row[1], row[2], row[3], datetime.fromisoformat(row[4]),
                                  datetime.fromisoformat(row[5]))
                for row in self._select_in(f"SELECT {columns} FROM entries WHERE key IN", keys)}

    def record_post(self, post: KnownPost) -> None:
        self._db.execute(
            """INSERT INTO entries (key, feed, path, source_hash, date, lastmod)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (key) DO UPDATE SET source_hash = excluded.source_hash,
                   lastmod = excluded.lastmod, date = excluded.date""",
            (post.key, post.feed, post.path, post.source_hash, iso_utc(post.date), iso_utc(post.lastmod)),
        )

    def first_seen(self, keys: list[str], now: datetime) -> dict[str, datetime]:
        self._db.executemany("INSERT OR IGNORE INTO first_seen (key, at) VALUES (?, ?)",
                             [(key, iso_utc(now)) for key in keys])
        return {key: datetime.fromisoformat(at)
                for key, at in self._select_in("SELECT key, at FROM first_seen WHERE key IN", keys)}

    def add_pending(self, paths: Iterable[tuple[str, str]]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO pending (key, path) VALUES (?, ?)", paths)

    def clear_pending(self, keys: Iterable[str]) -> None:
        self._db.executemany("DELETE FROM pending WHERE key = ?", [(k,) for k in keys])

    def pending(self) -> list[tuple[str, str]]:
        return list(self._query("SELECT key, path FROM pending ORDER BY path"))

    def feeds(self) -> list[dict[str, object]]:
        cursor = self._query("SELECT * FROM feeds ORDER BY name")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def record_images(self, outcomes: Iterable[ImageOutcome], now: datetime) -> None:
        for image in outcomes:
            if image.file:
                self._db.execute(
                    """INSERT INTO images (url, file, folder, failures, last_attempt)
                       VALUES (?, ?, ?, 0, ?)
                       ON CONFLICT (url) DO UPDATE SET file = excluded.file, folder = excluded.folder,
                           failures = 0, last_error = NULL, last_attempt = excluded.last_attempt""",
                    (image.url, image.file, image.folder, iso_utc(now)))
            elif image.retry_later:
                self._db.execute(
                    """INSERT INTO images (url, failures, last_error, last_attempt) VALUES (?, 1, ?, ?)
                       ON CONFLICT (url) DO UPDATE SET failures = failures + 1,
                           last_error = excluded.last_error, last_attempt = excluded.last_attempt""",
                    (image.url, image.error, iso_utc(now)))

    def checkpoint(self, backfill: str) -> dict[str, Any] | None:
        cursor = self._query("SELECT * FROM backfills WHERE id = ?", (backfill,))
        row = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else None

    def save_checkpoint(self, backfill: str, cursor: str, tally: Any, done: bool, now: datetime) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO backfills (id, cursor, pages, archived, skipped, failed, reached, "
                "done, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (backfill, cursor, tally.pages, tally.archived, tally.skipped, tally.failed,
                 iso_utc(tally.reached) if tally.reached else None, int(done), iso_utc(now)))

    def posts_per_feed(self) -> dict[str, list[str]]:
        """Each feed's posts, by their paths in the archive."""
        found: dict[str, list[str]] = {}
        for feed, path in self._query("SELECT feed, path FROM entries ORDER BY path"):
            found.setdefault(str(feed), []).append(str(path))
        return found

    def count_entries(self) -> int:
        return int(self._query("SELECT count(*) FROM entries").fetchone()[0])

    def _query(self, sql: str, params: Iterable[object] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            raise _state_error(self.path, exc) from exc

    def _select_in(self, sql: str, keys: Iterable[str]) -> Iterator[tuple[str, ...]]:
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), 500):  # stay under SQLite's variable limit
            chunk = wanted[start:start + 500]
            yield from self._query(f"{sql} ({','.join('?' * len(chunk))})", chunk)


class WorkerCache:
    """The state's caches, for worker threads: images archived, summaries paid for.

    Workers ask through a connection of their own (SQLite in WAL mode lets them read
    while the main thread writes). A summary is written as soon as it is paid for, so a
    run killed afterwards does not pay for it twice.
    """

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, check_same_thread=False,
                                   isolation_level=None)
        self._lock = threading.Lock()

    def image(self, url: str) -> tuple[str | None, str | None, int] | None:
        """(file name, a folder holding it, failures so far) of an image URL."""
        row = self._one("SELECT file, folder, failures FROM images WHERE url = ?", (url,))
        return (row[0], row[1], int(row[2])) if row else None

    def summary(self, key: str) -> tuple[list[str], str] | None:
        row = self._one("SELECT keywords, summary FROM summaries WHERE key = ?", (key,))
        return ([str(k) for k in json.loads(row[0])], str(row[1])) if row else None

    def remember_summary(self, key: str, keywords: list[str], summary: str, now: datetime) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO summaries (key, keywords, summary, created) "
                             "VALUES (?, ?, ?, ?)",
                             (key, json.dumps(keywords, ensure_ascii=False), summary, iso_utc(now)))

    def _one(self, sql: str, params: tuple[str, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._db.execute(sql, params).fetchone()
        return row

    def close(self) -> None:
        self._db.close()


def open_state(state_dir: Path, archive_dir: Path, *, fresh: bool = False) -> State:
    """Open the state, creating it; a new or unreadable one is rebuilt from the archive.

    With `fresh`, the current database is set aside first (``ingest reindex``).
    """
    path = state_dir / DB_NAME
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"cannot create state_dir {state_dir}: {exc.strerror}") from exc
    if fresh and path.exists():
        _set_aside(path, "bak")
    rebuild_needed = not path.exists()
    try:
        connection = _connect(path)
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError):  # locked, permissions, I/O: not ours to fix
            raise _state_error(path, exc) from exc
        log.warning("state database %s is unreadable (%s): rebuilding it from the archive", path, exc)
        _set_aside(path, "corrupt")
        connection = _connect(path)
        rebuild_needed = True
    state = State(connection, path)
    if rebuild_needed:
        rebuild(state, archive_dir)
    return state


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None,
                                 check_same_thread=False)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        # Damage in the middle of the file shows only when a query reaches it: look
        # at every page now (milliseconds), so that it is rebuilt, not hit mid-run.
        verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"damaged: {verdict}")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise StateError(f"{path}: made by a newer ingest (schema {version}); upgrade ingest")
        connection.executescript(_SCHEMA)
        _add_missing_columns(connection)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.isolation_level = "DEFERRED"
    except BaseException:
        connection.close()
        raise
    return connection


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    """Columns added after a table was first made: a state from an older ingest gains them."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(feeds)")}
    if "failing_since" not in columns:
        connection.execute("ALTER TABLE feeds ADD COLUMN failing_since TEXT")


def _set_aside(path: Path, why: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path.replace(path.with_name(f"{path.name}.{why}-{stamp}"))
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _state_error(path: Path, exc: sqlite3.Error) -> StateError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StateError(f"the state database {path} is locked by another program: close it, "
                          "then run again")
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return StateError(f"the state database {path} is damaged ({text}): run `ingest reindex` "
                          "to rebuild it from the archive")
    return StateError(f"the state database {path} failed: {text}")


def rebuild(state: State, archive_dir: Path) -> int:
    """Refill the entries table from the archive's front matter; return the count."""
    count = 0
    with state.transaction():
        for post in archive.read_posts(archive_dir):
            state.record_post(post)
            count += 1
    if count:
        log.warning("state rebuilt from the archive: %d posts", count)
    return count


def recover(state: State, archive_dir: Path) -> int:
    """Finish the bookkeeping of a run that was killed while writing posts."""
    pending = state.pending()
    with state.transaction():
        for _key, path in pending:
            post = archive.recover_post(archive_dir, path)
            if post is not None:
                state.record_post(post)
        state.clear_pending(key for key, _ in pending)
    if pending:
        log.warning("finished the bookkeeping of %d posts an earlier run left unfinished "
                    "(it was killed, or stopped by an error such as a full disk)", len(pending))
    return len(pending)


def iso_utc(moment: datetime) -> str:
    """How the state (and the lock) write a moment: ISO 8601, in UTC."""
    return moment.astimezone(UTC).isoformat()
