"""The run report: what a run or backfill did, as text for people and JSON for machines.

`TextReport` writes the lines `ingest run` prints: one a feed as it finishes,
problems under it, then totals.

The schema is `schema/report.schema.json` (version 1); fields are only ever
added. Per feed: status, HTTP status, counts, error, and the entries that
failed or were archived from the feed alone; totals; the exit code.

``python -m ingest.report annotations REPORT`` prints GitHub Actions warning
annotations for the failed feeds and entries (the scheduled workflow uses it).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ingest import archive
from ingest.models import FeedResult, FeedStatus, Outcome, RunReport

VERSION = 1


def to_json(report: RunReport, command: str, *, exit_code: int | None = None,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    feeds = [_feed(f) for f in report.feeds]
    data: dict[str, Any] = {
        "version": VERSION,
        "command": command,
        "started": _time(report.started),
        "finished": _time(report.finished),
        "exit_code": report.exit_code if exit_code is None else exit_code,
        "error": None,
        "feeds": feeds,
        "totals": {
            "feeds": len(feeds),
            "feeds_failed": sum(1 for f in report.feeds if f.status is FeedStatus.ERROR),
            **{k: sum(f[k] for f in feeds) for k in ("new", "updated", "unchanged", "failed", "partial")},
            "images": {k: sum(f["images"][k] for f in feeds) for k in ("downloaded", "reused", "remote")},
            "sources": {"documents": report.kept_documents, "bytes": report.kept_bytes},
        },
    }
    data.update(extra or {})
    return data


def failure(command: str, error: str, now: datetime) -> dict[str, Any]:
    """The report of a run that could not happen at all (exit 2)."""
    empty = RunReport(started=now, finished=now)
    return {**to_json(empty, command, exit_code=2), "error": error}


def write(path: Path, data: dict[str, Any]) -> None:
    archive.write_atomic(path, (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode())


def _feed(feed: FeedResult) -> dict[str, Any]:
    return {
        "name": feed.name,
        "url": feed.url,
        "status": feed.status.value,
        "http_status": feed.http_status,
        "new": feed.count(Outcome.NEW),
        "updated": feed.count(Outcome.UPDATED),
        "unchanged": feed.count(Outcome.UNCHANGED),
        "failed": feed.count(Outcome.FAILED),
        "partial": feed.partial,
        "already_archived": feed.owners(),
        "images": {"downloaded": feed.images(downloaded=True), "reused": feed.images(downloaded=False),
                   "remote": feed.images(failed=True)},
        "error": feed.error,
        "problems": [
            {"id": e.key, "title": e.title, "outcome": e.outcome.value, "path": e.path,
             "error": e.error, "partial": e.partial, "note": e.note,
             "remote_images": [{"url": i.url, "error": i.error} for i in e.remote_images]}
            for e in feed.entries if e.outcome is Outcome.FAILED or e.partial or e.remote_images or e.note
        ],
    }


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def size(count: int) -> str:
    """Bytes as people read them: 512 B, 34 KB, 1.2 MB, 3.4 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}" if unit != "KB" else f"{count / scale:.0f} KB"
    return f"{count} B"


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 post`, `2 posts`: counts in the run's lines read as English."""
    return f"{count} {word if count == 1 else many or word + 's'}"


class TextReport:
    """The lines `ingest run` prints: each feed's as it finishes, then the totals."""

    def __init__(self, out: TextIO, names: Iterable[str], *, verbose: bool = False,
                 quiet: bool = False) -> None:
        self._out = out
        self._width = max((len(n) for n in names), default=4)
        self._verbose = verbose
        self._quiet = quiet

    def feed(self, feed: FeedResult) -> None:
        if self._quiet and not feed.failed:
            return
        pad = " " * self._width
        lines = [f"{feed.name:<{self._width}}  {_feed_line(feed)}"]
        for entry in feed.entries:
            if entry.outcome is Outcome.FAILED:
                lines.append(f"{pad}  ! {entry.title}: {entry.error}")
            elif entry.partial:
                lines.append(f"{pad}  ~ {entry.title}: archived from the feed only, the page "
                             f"failed: {entry.partial}")
            elif entry.note:
                lines.append(f"{pad}  ~ {entry.title}: {entry.note}")
            if entry.remote_images:
                first = entry.remote_images[0].error
                lines.append(f"{pad}  ~ {entry.title}: {len(entry.remote_images)} of "
                             f"{plural(len(entry.images), 'image')} kept remote ({first})")
            elif self._verbose and entry.outcome is not Outcome.UNCHANGED:
                lines.append(f"{pad}  {entry.outcome.value}: {entry.path}")
        for owner, count in feed.owners().items():
            entries = plural(count, "entry", "entries")
            lines.append(f"{pad}  = {entries} repeating an earlier entry's identity: the first is the post"
                         if owner == feed.name else f"{pad}  = {entries} already archived from feed {owner}")
        print("\n".join(lines), file=self._out, flush=True)

    def totals(self, outcome: RunReport) -> None:
        if self._quiet and outcome.exit_code == 0:
            return
        totals = {o: sum(f.count(o) for f in outcome.feeds) for o in Outcome}
        failed_feeds = sum(1 for f in outcome.feeds if f.status is FeedStatus.ERROR)
        partial = sum(f.partial for f in outcome.feeds)
        downloaded = sum(f.images(downloaded=True) for f in outcome.feeds)
        reused = sum(f.images(downloaded=False) for f in outcome.feeds)
        remote = sum(f.images(failed=True) for f in outcome.feeds)
        if downloaded or reused or remote:
            print(f"images: {downloaded} downloaded, {reused} already archived, {remote} kept remote",
                  file=self._out)
        if outcome.kept_documents:
            print(f"sources: {plural(outcome.kept_documents, 'document')} kept "
                  f"({size(outcome.kept_bytes)} compressed)", file=self._out)
        print(f"total: {totals[Outcome.NEW]} new, {totals[Outcome.UPDATED]} updated, "
              f"{totals[Outcome.UNCHANGED]} unchanged, {plural(totals[Outcome.FAILED], 'entry', 'entries')} "
              "failed, " + (f"{partial} archived from the feed only, " if partial else "")
              + f"{failed_feeds} of {plural(len(outcome.feeds), 'feed')} failed", file=self._out, flush=True)


def _feed_line(feed: FeedResult) -> str:
    if feed.status is FeedStatus.ERROR:
        return f"error         {feed.error}"
    if feed.status is FeedStatus.NOT_MODIFIED:
        return "not-modified"
    counts = ", ".join(f"{feed.count(o)} {o.value}" for o in (Outcome.NEW, Outcome.UPDATED,
                                                               Outcome.UNCHANGED, Outcome.FAILED)
                       if feed.count(o) or o is not Outcome.FAILED)
    return f"ok            {counts}"


def github_annotations(data: dict[str, Any]) -> list[str]:
    lines = []
    for feed in data["feeds"]:
        if feed["status"] == "error":
            lines.append(f"::warning title=feed {feed['name']} failed::{feed['url']}: {feed['error']}")
        for problem in feed["problems"]:
            if problem["outcome"] == "failed":
                lines.append(f"::warning title=entry failed in {feed['name']}::{problem['title']}: "
                             f"{problem['error']}")
    return [line.replace("\n", " ") for line in lines]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "annotations":
        print("usage: python -m ingest.report annotations REPORT.json", file=sys.stderr)
        return 2
    for line in github_annotations(json.loads(Path(argv[1]).read_text(encoding="utf-8"))):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
