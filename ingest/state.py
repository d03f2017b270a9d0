"""What runs remember between them, in SQLite (WAL) under state_dir.

    feeds    url → validators (ETag, Last-Modified) and the last poll's outcome
    entries  entry key → post path, source hash, dates, owning feed
    first_seen  entry key → when an undated entry was first seen (its post's date)

The state is a cache of the archive, never the only copy of anything: when
the database is missing (a CI runner without its cache), `open_state`
rebuilds the entries from the archive's front matter, so nothing is
duplicated and no byte of the archive changes. Only the main thread of a run
touches the state; each feed's results are committed in one transaction.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ingest import archive
from ingest.errors import StateError
from ingest.models import FeedResult, FeedStatus, KnownPost, Validators

log = logging.getLogger(__name__)

DB_NAME = "state.sqlite3"
SCHEMA_VERSION = 1
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
    failures INTEGER NOT NULL DEFAULT 0
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
"""


class State:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            with self._db:
                yield
        except sqlite3.Error as exc:
            raise StateError(f"state database write failed: {exc}") from exc

    def validators(self, url: str) -> Validators:
        row = self._db.execute("SELECT etag, last_modified FROM feeds WHERE url = ?", (url,)).fetchone()
        return Validators(*row) if row else Validators()

    def record_feed(self, result: FeedResult, validators: Validators | None, now: datetime) -> None:
        """Store a poll's outcome; validators only when every entry was archived."""
        ok = result.status is not FeedStatus.ERROR
        self._db.execute(
            """INSERT INTO feeds (url, name, last_status, http_status, last_attempt, last_success,
                                  last_error, failures)
               VALUES (:url, :name, :status, :http, :now, CASE WHEN :ok THEN :now END, :error,
                       CASE WHEN :ok THEN 0 ELSE 1 END)
               ON CONFLICT (url) DO UPDATE SET
                   name = :name, last_status = :status, http_status = :http, last_attempt = :now,
                   last_success = CASE WHEN :ok THEN :now ELSE last_success END,
                   last_error = :error,
                   failures = CASE WHEN :ok THEN 0 ELSE failures + 1 END""",
            {"url": result.url, "name": result.name, "status": result.status.value,
             "http": result.http_status, "now": _iso(now), "ok": ok, "error": result.error},
        )
        if validators is not None:
            self._db.execute("UPDATE feeds SET etag = ?, last_modified = ? WHERE url = ?",
                             (validators.etag, validators.last_modified, result.url))

    def known(self, keys: Iterable[str]) -> dict[str, KnownPost]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, KnownPost] = {}
        for start in range(0, len(wanted), 500):  # stay under SQLite's variable limit
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(
                f"SELECT key, feed, path, source_hash, date, lastmod FROM entries WHERE key IN ({marks})",
                chunk,
            ):
                found[row[0]] = KnownPost(row[0], row[1], row[2], row[3],
                                          datetime.fromisoformat(row[4]), datetime.fromisoformat(row[5]))
        return found

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
        marks = ",".join("?" * len(keys))
        rows = self._db.execute(f"SELECT key, at FROM first_seen WHERE key IN ({marks})", keys)
        return {key: datetime.fromisoformat(at) for key, at in rows}

    def count_entries(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])


def open_state(state_dir: Path, archive_dir: Path) -> State:
    """Open (creating if needed) the state; a new state is rebuilt from the archive."""
    path = state_dir / DB_NAME
    fresh = not path.exists()
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, timeout=10, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.isolation_level = "DEFERRED"
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise StateError(f"{path}: made by a newer ingest (schema {version}); upgrade ingest")
        with connection:
            connection.executescript(_SCHEMA)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except (OSError, sqlite3.Error) as exc:
        raise StateError(f"cannot open the state database {path}: {exc}") from exc
    state = State(connection)
    if fresh:
        rebuild(state, archive_dir)
    return state


def rebuild(state: State, archive_dir: Path) -> int:
    """Refill the entries table from the archive's front matter; return the count."""
    count = 0
    with state.transaction():
        for post in archive.read_posts(archive_dir):
            state.record_post(post)
            count += 1
    if count:
        log.info("state rebuilt from the archive: %d posts", count)
    return count


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()
