"""One run at a time: an exclusive, crash-safe lock in state_dir.

`RunLock` holds an exclusive flock on ``state_dir/lock``, released by the kernel
if its holder dies, so a killed run's lock is simply taken over by the next.
The file records who holds it (pid, host, command, start), for the message a
second run prints before it exits 2; a clean exit empties it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from datetime import datetime
from pathlib import Path
from types import TracebackType

from ingest.errors import LockError, StateError
from ingest.state import iso_utc

log = logging.getLogger(__name__)

LOCK_NAME = "lock"


class RunLock:
    """An exclusive, crash-safe lock on state_dir: one run at a time."""

    def __init__(self, state_dir: Path, command: str, now: datetime) -> None:
        self._path = state_dir / LOCK_NAME
        self._holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                        "started": iso_utc(now)}
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

