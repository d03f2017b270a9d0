"""The run report: what a run or backfill did, as JSON for dashboards and CI.

The schema is `schema/report.schema.json` (version 1); fields are only ever
added. Per feed: status, HTTP status, counts, error, and the entries that
failed or were archived from the feed alone; totals; the exit code.

``python -m ingest.report annotations REPORT`` prints GitHub Actions warning
annotations for the failed feeds and entries (the scheduled workflow uses it).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
        "images": {"downloaded": feed.images(downloaded=True), "reused": feed.images(downloaded=False),
                   "remote": feed.images(failed=True)},
        "error": feed.error,
        "problems": [
            {"id": e.key, "title": e.title, "outcome": e.outcome.value, "path": e.path,
             "error": e.error, "partial": e.partial,
             "remote_images": [{"url": i.url, "error": i.error} for i in e.remote_images]}
            for e in feed.entries if e.outcome is Outcome.FAILED or e.partial or e.remote_images
        ],
    }


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
