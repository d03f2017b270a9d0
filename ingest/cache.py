"""The state's caches, for worker threads: images archived, summaries paid for.

Workers ask through a connection of their own (SQLite in WAL mode lets them
read while the main thread writes). A summary is written as soon as it is paid
for, so a run killed afterwards does not pay for it twice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.state import BUSY_TIMEOUT, iso_utc


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
                             (key, json.dumps(keywords, ensure_ascii=False), summary, iso_utc(now)))

    def _one(self, sql: str, params: tuple[str, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._db.execute(sql, params).fetchone()
        return row

    def close(self) -> None:
        self._db.close()

