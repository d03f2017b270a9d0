"""The `ingest` command: argument parsing; `commands` does the work.

Exit codes (the contract): 0 every feed fine; 1 the run finished but some feed
or entry failed (the rest is archived); 2 the run could not happen at all.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, cast

from ingest import __version__

if TYPE_CHECKING:
    import httpx

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _common_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every command takes, before or after its name.

    Below the top level they default to SUPPRESS, so that an option given only
    before the subcommand is not reset by the subcommand's own defaults; `-v`
    counts into its own attribute there, so `-v run -v` is `-vv`.
    """
    keep = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument("--config", type=Path, help="configuration file (default: ./config.yaml)",
                        **({"default": Path("config.yaml")} if top else keep))
    parser.add_argument("-v", "--verbose", action="count", dest="verbose" if top else "verbose_after",
                        help="more detail: each written post (-v), HTTP traffic (-vv)",
                        **({"default": 0} if top else keep))
    parser.add_argument("-q", "--quiet", action="store_true", help="print only problems",
                        **({"default": False} if top else keep))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingest", description="Archive news feeds as Hugo posts.")
    _common_options(parser, top=True)
    parser.add_argument("--version", action="version", version=f"ingest {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = _command(commands, "run", "poll every feed once and archive new and changed entries")
    run.add_argument("--force", action="store_true",
                     help="also poll feeds that are backing off after failing run after run")
    run.add_argument("--report", type=Path, help="write a JSON report of the run here "
                                                 "(schema: schema/report.schema.json)")
    _command(commands, "status", "the feeds: last success, last error, failures, backoff, posts")
    search = _command(commands, "search", "find posts by words in their title and text (Chinese included)")
    search.add_argument("query", nargs="+", metavar="QUERY",
                        help='words, all required (prefixes for Latin words); "a phrase" in quotes')
    search.add_argument("--limit", type=_positive, default=20, help="at most this many results (default 20)")
    search.add_argument("--feed", metavar="NAME", help="only the posts of this feed (its category)")
    search.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="only posts dated this day or later")
    search.add_argument("--json", action="store_true", help="the results as JSON, for scripts")
    feeds = _command(commands, "feeds", "list the feeds, import them from OPML, export them")
    actions = feeds.add_subparsers(dest="action", required=True, metavar="ACTION")
    _command(actions, "list", "the feeds of config.yaml")
    opml_import = _command(actions, "import", "add the feeds of an OPML file to config.yaml")
    opml_import.add_argument("opml", type=Path, help="the OPML file")
    _command(actions, "export", "the feeds as OPML, on standard output")
    _command(commands, "reindex", "rebuild the state database from the archive")
    rebuild = _command(commands, "rebuild", "make posts again from their kept sources, with today's "
                                            "code and settings, without the network")
    rebuild.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                         help="posts (index.md) or folders of the archive (default: every post)")
    rebuild.add_argument("--feed", metavar="NAME", help="only the posts of this feed (its category)")
    rebuild.add_argument("--dry-run", action="store_true",
                         help="say which posts would change; write nothing")
    _add_backfill(commands)
    verify = _command(commands, "verify", "check that every archived post renders intact")
    verify.add_argument("--hugo", action="store_true",
                        help="also build the archive with Hugo and compare every page")
    verify.add_argument("--site", type=Path,
                        help="the Hugo site to build with (default: ingest's minimal one)")
    return parser


Commands = argparse._SubParsersAction  # argparse's type for a group of subcommands


def _command(group: Commands[argparse.ArgumentParser], name: str, help: str) -> argparse.ArgumentParser:
    parser = group.add_parser(name, help=help, description=help)
    _common_options(parser, top=False)
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments, with options given after a subcommand merged into those before it."""
    args = build_parser().parse_args(argv)
    args.verbose += vars(args).pop("verbose_after", 0)
    return args


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: write YYYY-MM-DD") from None


def _add_backfill(commands: Commands[argparse.ArgumentParser]) -> None:
    backfill = _command(commands, "backfill", "archive what the feeds no longer show")
    sources = backfill.add_subparsers(dest="source", required=True, metavar="SOURCE")
    kr = _command(sources, "36kr", "a 36kr channel's articles, newest first, back to a date")
    kr.add_argument("--channel", required=True,
                    help="the channel's nick, as in 36kr.com/information/<nick>/ (AI, web_news, …)")
    kr.add_argument("--since", required=True, type=_day, help="the oldest publish date wanted (UTC)")
    kr.add_argument("--until", type=_day, help="the newest publish date wanted (UTC; default: now)")
    urls = _command(sources, "urls", "article URLs, one a line")
    urls.add_argument("file", type=Path, help="the file of URLs ('-' for standard input)")
    feed = _command(sources, "feed", "every item of a saved feed file, or of a feed URL")
    feed.add_argument("source", help="a feed file's path, or a feed's URL")
    for parser in (kr, urls, feed):
        parser.add_argument("--category", help="the posts' category (default: 36kr<channel> for a "
                                               "36kr channel, else backfill)")
        parser.add_argument("--dry-run", action="store_true",
                            help="list what would be archived; fetch no article, write nothing")
        parser.add_argument("--report", type=Path, help="write a JSON report of the backfill here")


def main(argv: Sequence[str] | None = None, *, client: httpx.Client | None = None,
         clock: Clock = _utc_now, out: TextIO | None = None) -> int:
    args = parse_args(argv)
    output = out or cast(TextIO, PipeSafe(sys.stdout))
    _configure_logging(args.verbose, args.quiet)
    from ingest.errors import IngestError

    try:
        if args.command == "search":  # before anything slow to import: see ingest/locations.py
            from ingest.search import search_command

            return search_command(args, output)
        from ingest import commands
        from ingest.config import load_config
        from ingest.lock import RunLock

        config = load_config(args.config, no_feeds_yet=args.command == "feeds")
        if args.command == "verify":
            return commands.verify(config, args, output)
        if args.command == "status":
            return commands.status(config, clock, output)
        if args.command == "feeds":
            return commands.feeds(config, args, output)
        with RunLock(config.state_dir, args.command, clock()):
            if args.command == "reindex":
                return commands.reindex(config, output)
            if args.command == "rebuild":
                return commands.rebuild(config, args, clock, output)
            if args.command == "backfill":
                return commands.backfill(config, args, client, clock, output)
            return commands.run(config, args, client, clock, output)
    except IngestError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        if getattr(args, "report", None):
            from ingest import commands, report

            commands.write_report(args.report, report.failure(args.command, str(exc), clock()))
        return 2
    except KeyboardInterrupt:
        print("ingest: interrupted; nothing is lost, the next run carries on", file=sys.stderr)
        return 130


class PipeSafe(io.TextIOBase):
    """Standard output that its reader may close early (`ingest status | head -1`).

    The command carries on and finishes its work; what it would still print is
    dropped, and the interpreter's last flush finds /dev/null instead of a
    closed pipe, so no BrokenPipeError traceback ends the output.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                self._stream.write(text)
                if "\n" in text:
                    self._stream.flush()  # a line is shown when it is printed, also in a log
            except BrokenPipeError:
                self._gone = True
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._stream.fileno())
                os.close(devnull)
        return len(text)

    def isatty(self) -> bool:
        return self._stream.isatty()


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose > 1 else logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
