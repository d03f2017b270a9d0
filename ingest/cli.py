"""The `ingest` command: argument parsing and printing, nothing else.

Exit codes (the contract): 0 every feed fine; 1 the run finished but some feed
or entry failed (the rest is archived); 2 the run could not happen at all.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import httpx

from ingest import __version__, archive, opml, report, verify
from ingest.backfill import Backfill, progress_for
from ingest.config import Config, load_config
from ingest.errors import IngestError
from ingest.fetch import USER_AGENT, Fetcher, Policy, make_client
from ingest.models import FeedResult, FeedStatus, Outcome
from ingest.models import RunReport as Report
from ingest.pipeline import Run
from ingest.sources.kr36 import HOSTS as KR36_HOSTS
from ingest.state import RunLock, open_state, recover

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingest", description="Archive news feeds as Hugo posts.")
    parser.add_argument("--config", type=Path, default=Path("config.yaml"),
                        help="configuration file (default: ./config.yaml)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more detail: each entry (-v), HTTP traffic (-vv)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    parser.add_argument("--version", action="version", version=f"ingest {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="poll every feed once and archive new and changed entries")
    run.add_argument("--force", action="store_true",
                     help="also poll feeds that are backing off after failing run after run")
    run.add_argument("--report", type=Path, help="write a JSON report of the run here "
                                                 "(schema: schema/report.schema.json)")
    commands.add_parser("status", help="the feeds: last success, last error, failures, backoff, posts")
    feeds = commands.add_parser("feeds", help="list the feeds, import them from OPML, export them")
    actions = feeds.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="the feeds of config.yaml")
    opml_import = actions.add_parser("import", help="add the feeds of an OPML file to config.yaml")
    opml_import.add_argument("opml", type=Path, help="the OPML file")
    actions.add_parser("export", help="the feeds as OPML, on standard output")
    commands.add_parser("reindex", help="rebuild the state database from the archive")
    _add_backfill(commands)
    verify = commands.add_parser("verify", help="check that every archived post renders intact")
    verify.add_argument("--hugo", action="store_true",
                        help="also build the archive with Hugo and compare every page")
    verify.add_argument("--site", type=Path,
                        help="the Hugo site to build with (default: ingest's minimal site)")
    return parser


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: write YYYY-MM-DD") from None


def _add_backfill(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backfill = commands.add_parser("backfill", help="archive what the feeds no longer show")
    sources = backfill.add_subparsers(dest="source", required=True, metavar="SOURCE")
    kr = sources.add_parser("36kr", help="a 36kr channel's articles, newest first, back to a date")
    kr.add_argument("--channel", required=True,
                    help="the channel's nick, as in 36kr.com/information/<nick>/ (AI, web_news, …)")
    kr.add_argument("--since", required=True, type=_day, help="the oldest publish date wanted (UTC)")
    kr.add_argument("--until", type=_day, help="the newest publish date wanted (UTC; default: now)")
    urls = sources.add_parser("urls", help="article URLs, one a line")
    urls.add_argument("file", type=Path, help="the file of URLs ('-' for standard input)")
    feed = sources.add_parser("feed", help="every item of a saved feed file, or of a feed URL")
    feed.add_argument("source", help="a feed file's path, or a feed's URL")
    for parser in (kr, urls, feed):
        parser.add_argument("--category", help="the posts' category (default: 36kr<channel> for a "
                                               "36kr channel, else backfill)")
        parser.add_argument("--dry-run", action="store_true",
                            help="list what would be archived; fetch no article, write nothing")
        parser.add_argument("--report", type=Path, help="write a JSON report of the backfill here")


def main(argv: Sequence[str] | None = None, *, client: httpx.Client | None = None,
         clock: Clock = _utc_now, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    _configure_logging(args.verbose, args.quiet)
    try:
        config = load_config(args.config)
        if args.command == "verify":
            return _verify(config, args, out)
        if args.command == "status":
            return _status(config, clock, out)
        if args.command == "feeds":
            return _feeds(config, args, out)
        with RunLock(config.state_dir, args.command, clock()):
            if args.command == "reindex":
                return _reindex(config, out)
            if args.command == "backfill":
                return _backfill(config, args, client, clock, out)
            return _run(config, args, client, clock, out)
    except IngestError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        if getattr(args, "report", None):
            _write_report(args.report, report.failure(args.command, str(exc), clock()))
        return 2
    except KeyboardInterrupt:
        print("ingest: interrupted; nothing is lost, the next run carries on", file=sys.stderr)
        return 130


def _run(config: Config, args: argparse.Namespace, client: httpx.Client | None, clock: Clock,
         out: TextIO) -> int:
    policy = _policy(config)
    archive.check_writable(config.archive_dir)
    state = open_state(config.state_dir, config.archive_dir)
    http = client or make_client(policy)
    try:
        recover(state, config.archive_dir)
        with Run(config, state, Fetcher(http, policy), clock) as run:
            outcome = run.execute(tuple(config.for_feed(f) for f in config.feeds), force=args.force)
    finally:
        state.close()
        if client is None:  # a client passed in is its owner's to close
            http.close()
    print_report(outcome, out, verbose=args.verbose > 0, quiet=args.quiet)
    if args.report:
        _write_report(args.report, report.to_json(outcome, "run"))
    return outcome.exit_code


def _backfill(config: Config, args: argparse.Namespace, client: httpx.Client | None, clock: Clock,
              out: TextIO) -> int:
    policy = _policy(config)
    if not args.dry_run:
        archive.check_writable(config.archive_dir)
    state = open_state(config.state_dir, config.archive_dir)
    http = client or make_client(policy)
    since = getattr(args, "since", None)
    default_category = f"36kr{args.channel.lower()}" if args.source == "36kr" else "backfill"
    try:
        recover(state, config.archive_dir)
        job = Backfill(config, state, Fetcher(http, policy), clock, progress_for(out, since, clock()),
                       out, category=args.category or default_category, dry_run=args.dry_run)
        if args.source == "36kr":
            code = job.channel(args.channel, args.since, args.until)
        elif args.source == "urls":
            text = sys.stdin.read() if str(args.file) == "-" else _read_text(args.file)
            code = job.urls(text.splitlines())
        else:
            code = job.feed(args.source)
        if args.report:
            _write_report(args.report, job.report(code))
        return code
    finally:
        state.close()
        if client is None:
            http.close()


def _write_report(path: Path, data: dict[str, object]) -> None:
    try:
        report.write(path, data)
    except IngestError as exc:
        print(f"ingest: cannot write the report: {exc}", file=sys.stderr)


def _status(config: Config, clock: Clock, out: TextIO) -> int:
    """One line a configured feed; exit 1 when one has been failing for more than a day."""
    state = open_state(config.state_dir, config.archive_dir)
    now = clock()
    try:
        polled = {str(row["url"]): row for row in state.feeds()}
        posts = state.posts_per_feed()
        rows = [("feed", "last success", "last error", "failing", "next try", "posts")]
        stale = []
        for feed in config.feeds:
            row = polled.get(feed.url, {})
            failures, due, _ = state.backoff(feed.url)
            since = row.get("failing_since")
            if since and now - datetime.fromisoformat(str(since)) > timedelta(days=1):
                stale.append(feed.name)
            error = " ".join(str(row.get("last_error") or "-").split())
            rows.append((feed.name, _when(row.get("last_success")) if row else "never polled",
                         error[:60] + ("…" if len(error) > 60 else ""),
                         f"{failures} runs" if failures else "-", _when(due) if due else "-",
                         str(posts.get(feed.name, 0))))
    finally:
        state.close()
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip(), file=out)
    if stale:
        print(f"failing for more than a day: {', '.join(stale)}", file=out)
    return 1 if stale else 0


def _when(moment: object) -> str:
    if not moment:
        return "never"
    value = moment if isinstance(moment, datetime) else datetime.fromisoformat(str(moment))
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _feeds(config: Config, args: argparse.Namespace, out: TextIO) -> int:
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
        print(f"{feed.name}  {feed.url}  (full_content {settings.full_content}, images "
              f"{'on' if settings.images else 'off'}, summary {settings.summary})", file=out)
    return 0


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(f"cannot read {path}: {exc}") from None


def _reindex(config: Config, out: TextIO) -> int:
    state = open_state(config.state_dir, config.archive_dir, fresh=True)
    try:
        print(f"state rebuilt from {config.archive_dir}: {state.count_entries()} posts", file=out)
    finally:
        state.close()
    return 0


def _verify(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    problems = verify.verify(config.archive_dir, hugo=args.hugo, site=args.site)
    for problem in problems:
        print(problem, file=out)
    checked = sum(1 for _ in verify.posts(config.archive_dir))
    how = "built with Hugo and compared" if args.hugo else "checked"
    print(f"{checked} posts {how}: {len(problems) or 'no'} problems", file=out)
    return 1 if problems else 0


def _policy(config: Config) -> Policy:
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
    )


def print_report(outcome: Report, out: TextIO, *, verbose: bool = False,
                 quiet: bool = False) -> None:
    width = max((len(f.name) for f in outcome.feeds), default=4)
    for feed in outcome.feeds:
        if quiet and not feed.failed:
            continue
        print(f"{feed.name:<{width}}  {_feed_line(feed)}", file=out)
        for entry in feed.entries:
            if entry.outcome is Outcome.FAILED:
                print(f"{'':<{width}}  ! {entry.title}: {entry.error}", file=out)
            elif entry.partial:
                print(f"{'':<{width}}  ~ {entry.title}: archived from the feed only, the page "
                      f"failed: {entry.partial}", file=out)
            if entry.remote_images:
                first = entry.remote_images[0].error
                print(f"{'':<{width}}  ~ {entry.title}: {len(entry.remote_images)} of "
                      f"{len(entry.images)} images kept remote ({first})", file=out)
            elif verbose and entry.outcome is not Outcome.UNCHANGED:
                print(f"{'':<{width}}  {entry.outcome.value}: {entry.path}", file=out)
    if quiet and outcome.exit_code == 0:
        return
    totals = {o: sum(f.count(o) for f in outcome.feeds) for o in Outcome}
    failed_feeds = sum(1 for f in outcome.feeds if f.status is FeedStatus.ERROR)
    partial = sum(f.partial for f in outcome.feeds)
    downloaded = sum(f.images(downloaded=True) for f in outcome.feeds)
    reused = sum(f.images(downloaded=False) for f in outcome.feeds)
    remote = sum(f.images(failed=True) for f in outcome.feeds)
    if downloaded or reused or remote:
        print(f"images: {downloaded} downloaded, {reused} already archived, {remote} kept remote",
              file=out)
    print(f"total: {totals[Outcome.NEW]} new, {totals[Outcome.UPDATED]} updated, "
          f"{totals[Outcome.UNCHANGED]} unchanged, {totals[Outcome.FAILED]} entries failed, "
          + (f"{partial} archived from the feed only, " if partial else "")
          + f"{failed_feeds} of {len(outcome.feeds)} feeds failed", file=out)


def _feed_line(feed: FeedResult) -> str:
    if feed.status is FeedStatus.ERROR:
        return f"error         {feed.error}"
    if feed.status is FeedStatus.NOT_MODIFIED:
        return "not-modified"
    counts = ", ".join(f"{feed.count(o)} {o.value}" for o in (Outcome.NEW, Outcome.UPDATED,
                                                               Outcome.UNCHANGED, Outcome.FAILED)
                       if feed.count(o) or o is not Outcome.FAILED)
    return f"ok            {counts}"


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
