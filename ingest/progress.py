"""How a long backfill shows its progress: a bar on a terminal, lines in a log."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol, TextIO

from ingest.models import FeedResult, Outcome


@dataclass(slots=True)
class Tally:
    pages: int = 0
    archived: int = 0
    skipped: int = 0
    failed: int = 0
    reached: datetime | None = None  # the oldest publish time seen so far

    def add(self, result: FeedResult) -> None:
        self.archived += result.count(Outcome.NEW)
        self.skipped += result.count(Outcome.UNCHANGED) + result.count(Outcome.UPDATED)
        self.failed += result.count(Outcome.FAILED)


class Progress(Protocol):
    def update(self, tally: Tally, note: str = "") -> None: ...
    def close(self) -> None: ...


class LineProgress:
    """Plain progress lines for logs (cron, CI), at most one every `every` seconds."""

    def __init__(self, out: TextIO, every: float = 10.0) -> None:
        self._out = out
        self._every = every
        self._started = time.monotonic()
        self._last = 0.0

    def update(self, tally: Tally, note: str = "") -> None:
        now = time.monotonic()
        if now - self._last < self._every and tally.pages > 1:
            return
        self._last = now
        rate = tally.archived / max(now - self._started, 1e-6)
        reached = f", reached {tally.reached:%Y-%m-%d}" if tally.reached else ""
        print(f"page {tally.pages}: {tally.archived} archived, {tally.skipped} already archived, "
              f"{tally.failed} failed, {rate:.1f} articles/s{reached}{note}", file=self._out, flush=True)

    def close(self) -> None:
        pass


class TerminalProgress:
    """A rich progress bar: pages, counts, rate; done is measured in days back to --since."""

    def __init__(self, since: datetime | None, newest: datetime) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._since = since
        self._newest = newest
        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                             TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
                             TimeRemainingColumn(), transient=False)
        span = (newest - since).total_seconds() if since else None
        self._task = self._bar.add_task("backfill", total=span, counts="")
        self._started = time.monotonic()
        self._bar.start()

    def update(self, tally: Tally, note: str = "") -> None:
        rate = tally.archived / max(time.monotonic() - self._started, 1e-6)
        counts = (f"{tally.archived} archived · {tally.skipped} skipped · {tally.failed} failed · "
                  f"{rate:.1f}/s")
        done = (self._newest - tally.reached).total_seconds() if tally.reached and self._since else None
        self._bar.update(self._task, description=f"page {tally.pages}", counts=counts,
                         completed=done)

    def close(self) -> None:
        self._bar.stop()


def progress_for(out: TextIO, since: date | None, now: datetime) -> Progress:
    start = datetime.combine(since, datetime.min.time(), UTC) if since else None
    if out.isatty():
        return TerminalProgress(start, now)
    return LineProgress(out)

