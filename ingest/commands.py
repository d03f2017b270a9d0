"""What each `ingest` command does, given its parsed arguments: cli.py only parses.

Each command imports what it needs when it runs: `ingest --version` or a run
whose feeds all answer 304 does not pay for HTML parsing, extraction or OPML.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from ingest import archive, report
from ingest.errors import IngestError
from ingest.locations import SEARCH_INDEX, SEARCH_STALE
from ingest.sources.kr36 import HOSTS as KR36_HOSTS
from ingest.state import FeedState, open_state, recover

if TYPE_CHECKING:
    import httpx

    from ingest.config import Config
    from ingest.fetch import Policy

Clock = Callable[[], datetime]


def run(config: Config, args: argparse.Namespace, client: httpx.Client | None, clock: Clock,
        out: TextIO) -> int:
    """`ingest run`: poll every feed once, archive what is new or changed."""
    from ingest.fetch import Fetcher, make_client
    from ingest.pipeline import Run

    policy = http_policy(config)
    archive.check_writable(config.archive_dir)
    state = open_state(config.state_dir, config.archive_dir)
    http = client or make_client(policy)
    text = report.TextReport(out, (f.name for f in config.feeds), verbose=args.verbose > 0,
                             quiet=args.quiet)
    try:
        recover(state, config.archive_dir)
        with Run(config, state, Fetcher(http, policy), clock) as run:
            outcome = run.execute(tuple(config.for_feed(f) for f in config.feeds), force=args.force,
                                  on_feed=text.feed)
    finally:
        state.close()
        if client is None:  # a client passed in is its owner's to close
            http.close()
    text.totals(outcome)
    update_search(config, [path for feed in outcome.feeds for path in feed.written()])
    if args.report:
        write_report(args.report, report.to_json(outcome, "run"))
    return outcome.exit_code


def backfill(config: Config, args: argparse.Namespace, client: httpx.Client | None, clock: Clock,
             out: TextIO) -> int:
    """`ingest backfill`: archive what the feeds no longer show."""
    from ingest.backfill import Backfill
    from ingest.fetch import Fetcher, make_client
    from ingest.pipeline import Run
    from ingest.progress import progress_for

    policy = http_policy(config)
    if not args.dry_run:
        archive.check_writable(config.archive_dir)
    state = open_state(config.state_dir, config.archive_dir)
    http = client or make_client(policy)
    since = getattr(args, "since", None)
    default_category = f"36kr{args.channel.lower()}" if args.source == "36kr" else "backfill"
    try:
        recover(state, config.archive_dir)
        # Each source of the backfill archives inside `with run` (Backfill): closed there.
        run = Run(config, state, Fetcher(http, policy), clock, only_new=True, strict_pages=True)
        job = Backfill(run, progress_for(out, since, clock()), out,
                       category=args.category or default_category, dry_run=args.dry_run)
        if args.source == "36kr":
            code = job.channel(args.channel, args.since, args.until)
        elif args.source == "urls":
            text = sys.stdin.read() if str(args.file) == "-" else _read_text(args.file)
            code = job.urls(text.splitlines())
        else:
            code = job.feed(args.source)
        update_search(config, job.written())
        if args.report:
            write_report(args.report, job.report(code))
        return code
    finally:
        state.close()
        if client is None:
            http.close()


def rebuild(config: Config, args: argparse.Namespace, clock: Clock, out: TextIO) -> int:
    """`ingest rebuild`: posts made again from their kept sources, offline."""
    from ingest.kept import Kept
    from ingest.rebuild import Rebuild, summary

    if config.kept_sources is None:
        raise IngestError("keep_sources is off in the config: there is nothing to rebuild from")
    if not args.dry_run:
        archive.check_writable(config.archive_dir)
    state = open_state(config.state_dir, config.archive_dir)
    try:
        recover(state, config.archive_dir)
        job = Rebuild(config, state, Kept(config.kept_sources), clock)
        tally = job.run(job.select(args.paths), feed=args.feed, dry_run=args.dry_run,
                        verbose=args.verbose > 0, out=out)
    finally:
        state.close()
    if args.verbose:
        for path in tally.rewritten:
            print(f"{'would rewrite' if args.dry_run else 'rewritten'}: {path}", file=out)
        for path in tally.restored:
            print(f"{'would restore' if args.dry_run else 'restored'}: {path}", file=out)
    print(summary(tally, dry_run=args.dry_run), file=out)
    if not args.dry_run:
        update_search(config, tally.written)
    return 1 if tally.without or tally.failed else 0


def update_search(config: Config, paths: list[str], *, build: bool = False) -> None:
    """Index the posts just written: the posts are safe, so a failure here only warns.

    A missing index, or one marked stale, is left to the first search to build from the
    whole archive (or built now with `build`): a run need not read back every post of an
    archive nobody searches. A run that wrote nothing (every feed unchanged) does not even
    load the search."""
    if not build and (not paths or not (config.state_dir / SEARCH_INDEX).exists()):
        return
    from ingest.search import SearchIndex, mark_stale

    if not build and (config.state_dir / SEARCH_STALE).exists():
        # Marked again: a build under way may have listed the posts before these were written.
        with contextlib.suppress(OSError):  # failing that, the old mark stands
            mark_stale(config.state_dir)
        return
    try:
        index = SearchIndex(config.state_dir, config.archive_dir)  # a missing index is built whole
        try:
            if not index.built:
                index.update(paths)
        finally:
            index.close()
    except IngestError as exc:
        try:
            mark_stale(config.state_dir)
            then = "the next search rebuilds it"
        except OSError as unmarked:
            then = f"nor could it be marked to be rebuilt ({unmarked}): run `ingest reindex`"
        print(f"ingest: the search index was not updated ({exc}); {then}", file=sys.stderr)


def write_report(path: Path, data: dict[str, object]) -> None:
    try:
        report.write(path, data)
    except IngestError as exc:
        print(f"ingest: cannot write the report: {exc}", file=sys.stderr)


def status(config: Config, clock: Clock, out: TextIO) -> int:
    """One line a configured feed; exit 1 when one has been failing for more than a day."""
    state = open_state(config.state_dir, config.archive_dir)
    now = clock()
    try:
        polled = {str(row["url"]): row for row in state.feeds()}
        polls = state.polls()
        posts = state.posts_per_feed()
        rows = [("feed", "last success", "last error", "failing", "next try", "posts", "images/post")]
        stale = []
        for feed in config.feeds:
            row = polled.get(feed.url, {})
            last = polls.get(feed.url, FeedState())
            failures, due = last.failures, last.next_poll
            since = row.get("failing_since")
            if since and now - datetime.fromisoformat(str(since)) > timedelta(days=1):
                stale.append(feed.name)
            error = " ".join(str(row.get("last_error") or "-").split())
            rows.append((feed.name, _when(row.get("last_success")) if row else "never polled",
                         error[:60] + ("…" if len(error) > 60 else ""),
                         report.plural(failures, "run") if failures else "-", _when(due) if due else "-",
                         str(len(posts.get(feed.name, []))),
                         _image_bytes(config.archive_dir, posts.get(feed.name, []))))
    finally:
        state.close()
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip(), file=out)
    if config.kept_sources:
        from ingest.kept import Kept

        documents, stored = Kept(config.kept_sources).usage()
        print(f"sources kept: {report.plural(documents, 'document')}, {report.size(stored)} "
              f"in {config.kept_sources}", file=out)
    if stale:
        print(f"failing for more than a day: {', '.join(stale)}", file=out)
    return 1 if stale else 0


def _image_bytes(archive_dir: Path, paths: list[str]) -> str:
    """The bytes of images a post holds, on average: what `image_max_width` keeps down."""
    if not paths:
        return "-"
    total = 0
    for path in paths:
        try:
            with os.scandir(archive_dir / PurePosixPath(path).parent) as folder:
                total += sum(e.stat().st_size for e in folder if e.is_file() and e.name != "index.md")
        except OSError:
            continue  # a post deleted by hand: nothing to count
    return report.size(round(total / len(paths)))


def _when(moment: object) -> str:
    if not moment:
        return "never"
    value = moment if isinstance(moment, datetime) else datetime.fromisoformat(str(moment))
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def feeds(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    """`ingest feeds list | import FILE | export`."""
    from ingest import opml

    if args.action == "export":
        out.write(opml.export(config).decode())
        return 0
    if args.action == "import":
        try:
            found = opml.read(args.opml.read_bytes())
        except OSError as exc:
            raise IngestError(f"cannot read {args.opml}: {exc.strerror}") from None
        added = opml.import_into(args.config, found)
        for line in added:
            print(f"added {line.name}  {line.url}", file=out)
        print(f"{len(added)} of {len(found)} feeds added to {args.config}", file=out)
        return 0
    for feed in config.feeds:
        settings = config.for_feed(feed)
        images = "off" if not settings.images else "on" + (
            f" at most {settings.image_max_width} px" if settings.image_max_width else "") + (
            " as webp" if settings.image_format == "webp" else "")
        print(f"{feed.name}  {feed.url}  (full_content {settings.full_content}, images {images}, "
              f"summary {settings.summary})", file=out)
    return 0


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(f"cannot read {path}: {exc}") from None


def reindex(config: Config, out: TextIO) -> int:
    state = open_state(config.state_dir, config.archive_dir, fresh=True)
    try:
        print(f"state rebuilt from {config.archive_dir}: {state.count_entries()} posts", file=out)
    finally:
        state.close()
    for suffix in ("", "-wal", "-shm"):
        (config.state_dir / f"{SEARCH_INDEX}{suffix}").unlink(missing_ok=True)
    update_search(config, [], build=True)  # built whole, as it is missing
    return 0


def verify(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    from ingest import verify as check

    problems = check.verify(config.archive_dir, hugo=args.hugo, site=args.site)
    for problem in problems:
        print(problem, file=out)
    checked = sum(1 for _ in check.posts(config.archive_dir))
    how = "built with Hugo and compared" if args.hugo else "checked"
    print(f"{report.plural(checked, 'post')} {how}: "
          f"{report.plural(len(problems), 'problem') if problems else 'no problems'}", file=out)
    return 1 if problems else 0


def http_policy(config: Config) -> Policy:
    from ingest.connect import AddressPolicy
    from ingest.fetch import USER_AGENT, Policy

    kr36 = config.sources.kr36
    hosts = {urlsplit(kr36.site).hostname or "", urlsplit(kr36.gateway).hostname or "", *KR36_HOSTS}
    return Policy(
        timeout=config.http.timeout,
        attempts=config.http.attempts,
        backoff=config.http.backoff,
        retry_budget=config.http.retry_budget,
        max_retry_after=config.http.max_retry_after,
        per_host=config.http.per_host,
        host_delays={h: kr36.delay for h in hosts if h and kr36.delay > 0},
        user_agent=config.http.user_agent or USER_AGENT,
        deadline=config.http.request_deadline,
        addresses=AddressPolicy.from_config(config.named_hosts(), config.http.allow_private),
    )
