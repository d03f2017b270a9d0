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
read the images and summaries tables through their own connection
(`WorkerCache`), and write a summary there as soon as it is paid for.

Only one run at a time: `RunLock` holds an exclusive flock on state_dir/lock
(released by the kernel if the holder dies, so a killed run's lock is simply
taken over) and records who holds it, for the message a second run prints.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from ingest import archive
from ingest.errors import LockError, StateError
from ingest.models import FeedResult, FeedStatus, ImageOutcome, KnownPost, Validators

log = logging.getLogger(__name__)

DB_NAME = "state.sqlite3"
LOCK_NAME = "lock"
SCHEMA_VERSION = 1
BUSY_TIMEOUT = 10.0
# A feed failing this many runs in a row waits before its next poll: 30 minutes,
# doubling with each further failure, never more than a day.
BACKOFF_AFTER = 3
BACKOFF_FIRST = timedelta(minutes=30)
BACKOFF_MAX = timedelta(days=1)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS feeds (
    url TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    last_status TEXT,
    http_status INTEGER,
    last_attempt TEXT,
    last_success TEXT,
    last_error TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    failing_since TEXT
);
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    feed TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    source_hash TEXT NOT NULL,
    date TEXT NOT NULL,
    lastmod TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS first_seen (
    key TEXT PRIMARY KEY,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    key TEXT PRIMARY KEY,
    path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS backfills (
    id TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    pages INTEGER NOT NULL,
    archived INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    reached TEXT,
    done INTEGER NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS summaries (
    key TEXT PRIMARY KEY,
    keywords TEXT NOT NULL,
    summary TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    url TEXT PRIMARY KEY,
    file TEXT,
    folder TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_attempt TEXT
);
"""


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

    def validators(self, url: str) -> Validators:
        row = self._query("SELECT etag, last_modified FROM feeds WHERE url = ?", (url,)).fetchone()
        return Validators(*row) if row else Validators()

    def backoff(self, url: str) -> tuple[int, datetime | None, str | None]:
        """(consecutive failures, when the next poll is due, the last error) of a feed."""
        row = self._query("SELECT failures, last_attempt, last_error FROM feeds WHERE url = ?",
                          (url,)).fetchone()
        if not row or row[0] < BACKOFF_AFTER or not row[1]:
            return (row[0] if row else 0), None, row[2] if row else None
        wait = min(BACKOFF_FIRST * 2 ** (row[0] - BACKOFF_AFTER), BACKOFF_MAX)
        return row[0], datetime.fromisoformat(row[1]) + wait, row[2]

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
             "http": result.http_status, "now": _iso(now), "ok": ok, "error": result.error},
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
            (post.key, post.feed, post.path, post.source_hash, _iso(post.date), _iso(post.lastmod)),
        )

    def first_seen(self, keys: list[str], now: datetime) -> dict[str, datetime]:
        self._db.executemany("INSERT OR IGNORE INTO first_seen (key, at) VALUES (?, ?)",
                             [(key, _iso(now)) for key in keys])
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
                    (image.url, image.file, image.folder, _iso(now)))
            elif image.error and not image.final:
                self._db.execute(
                    """INSERT INTO images (url, failures, last_error, last_attempt) VALUES (?, 1, ?, ?)
                       ON CONFLICT (url) DO UPDATE SET failures = failures + 1,
                           last_error = excluded.last_error, last_attempt = excluded.last_attempt""",
                    (image.url, image.error, _iso(now)))

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
                 _iso(tally.reached) if tally.reached else None, int(done), _iso(now)))

    def posts_per_feed(self) -> dict[str, int]:
        return {str(feed): int(n) for feed, n in
                self._query("SELECT feed, count(*) FROM entries GROUP BY feed")}

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
        log.warning("recovered %d posts a killed run was writing", len(pending))
    return len(pending)


class WorkerCache:
    """The state's caches, for worker threads: images archived, summaries paid for."""

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
                             (key, json.dumps(keywords, ensure_ascii=False), summary, _iso(now)))

    def _one(self, sql: str, params: tuple[str, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._db.execute(sql, params).fetchone()
        return row

    def close(self) -> None:
        self._db.close()


class RunLock:
    """An exclusive, crash-safe lock on state_dir: one run at a time."""

    def __init__(self, state_dir: Path, command: str, now: datetime) -> None:
        self._path = state_dir / LOCK_NAME
        self._holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                        "started": _iso(now)}
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise StateError(f"cannot create the lock {self._path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace")
            os.close(fd)
            raise LockError(f"another ingest run holds {self._path}: {_describe(holder)}; "
                            "wait for it to finish") from None
        previous = os.read(fd, 4096).decode(errors="replace").strip()
        if previous:
            log.warning("the previous run (%s) did not finish; taking over its lock", _describe(previous))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self._holder).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # an empty lock file means: ended cleanly
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        return (f"pid {info['pid']} on {info['host']}, `ingest {info['command']}` "
                f"started {info['started']}")
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()
