"""The `ingest` command: argument parsing; `commands` does the work.

Exit codes (the contract): 0 every feed fine; 1 the run finished but some feed
or entry failed (the rest is archived); 2 the run could not happen at all.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ingest import __version__

if TYPE_CHECKING:
    import httpx

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
    from ingest import commands
    from ingest.config import load_config
    from ingest.errors import IngestError
    from ingest.lock import RunLock

    try:
        config = load_config(args.config)
        if args.command == "verify":
            return commands.verify(config, args, out)
        if args.command == "status":
            return commands.status(config, clock, out)
        if args.command == "feeds":
            return commands.feeds(config, args, out)
        with RunLock(config.state_dir, args.command, clock()):
            if args.command == "reindex":
                return commands.reindex(config, out)
            if args.command == "backfill":
                return commands.backfill(config, args, client, clock, out)
            return commands.run(config, args, client, clock, out)
    except IngestError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        if getattr(args, "report", None):
            from ingest import report

            commands.write_report(args.report, report.failure(args.command, str(exc), clock()))
        return 2
    except KeyboardInterrupt:
        print("ingest: interrupted; nothing is lost, the next run carries on", file=sys.stderr)
        return 130


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
