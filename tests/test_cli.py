from __future__ import annotations

import argparse
import subprocess
import sys
import time
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from ingest import __version__
from ingest.cli import build_parser, parse_args
from ingest.config import Config
from tests import feedgen
from tests.conftest import DATA, Project
from tests.loopback import Fault, Loopback

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def options(parser: argparse.ArgumentParser) -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name
                yield from options(sub)
        else:
            yield from (o for o in action.option_strings if o not in ("-h", "--help"))


def config_keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every leaf key, and every list of mappings, as the README names them."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        args = [a for a in getattr(field.annotation, "__args__", ()) if a is not type(None)]
        inner = args[0] if args else field.annotation
        listed = typing.get_origin(field.annotation) in (tuple, list)
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            yield key
        elif not listed:  # a nested mapping, perhaps optional: only its leaves are keys
            yield from config_keys(inner, f"{key}.")
        else:  # a list of mappings (feeds)
            yield key
            yield from config_keys(inner, f"{key}[].")


def test_every_cli_option_is_documented() -> None:
    missing = [o for o in options(build_parser()) if f"`{o}" not in README and f" {o}" not in README]
    assert missing == []


def test_every_config_key_is_documented() -> None:
    missing = [k for k in config_keys(Config) if f"`{k}`" not in README]
    assert missing == []


def test_python_dash_m_is_the_same_program() -> None:
    done = subprocess.run([sys.executable, "-m", "ingest", "--version"], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == f"ingest {__version__}"


def test_run_prints_a_line_per_feed_and_totals(project: Project, server: Loopback) -> None:
    server.route("/a", (DATA / "feeds" / "36kr-official.xml").read_bytes())
    project.configure([{"name": "a", "url": server.url("/a")},
                       {"name": "broken", "url": server.url("/none")}])
    code, out = project.run("-v", "run")
    lines = out.splitlines()
    assert code == 1
    # Each feed's line comes as that feed finishes: in whatever order they finish.
    ok = next(i for i, line in enumerate(lines) if line.startswith("a "))
    assert "2 new, 0 updated, 0 unchanged" in lines[ok]
    assert "new: 2026/03/26/3001000000000001/index.md" in [line.strip() for line in lines[ok:ok + 3]]
    assert any(line.startswith("broken") and "HTTP 404" in line for line in lines)
    assert lines[-1] == "total: 2 new, 0 updated, 0 unchanged, 0 entries failed, 1 of 2 feeds failed"


def test_quiet_prints_only_problems(project: Project, server: Loopback) -> None:
    server.route("/a", (DATA / "feeds" / "36kr-official.xml").read_bytes())
    project.configure([{"name": "a", "url": server.url("/a")}])
    assert project.run("-q", "run") == (0, "")
    project.configure([{"name": "a", "url": server.url("/a")},
                       {"name": "broken", "url": server.url("/none")}])
    code, out = project.run("-q", "run")
    assert code == 1 and out.splitlines()[0].startswith("broken")


def test_verify_reports_broken_posts(project: Project, server: Loopback) -> None:
    server.route("/a", (DATA / "feeds" / "36kr-official.xml").read_bytes())
    project.configure([{"name": "a", "url": server.url("/a")}])
    project.run()
    assert project.run("verify") == (0, "2 posts checked: no problems\n")
    post = next(project.archive.glob("*/*/*/*/index.md"))
    post.write_text(post.read_text().replace("<p>", "\n\n<p>", 1))
    code, out = project.run("verify")
    assert code == 1 and "blank line inside the article's HTML block" in out


@pytest.mark.parametrize("argv", [
    ["--config", "c.yaml", "-q", "run", "--report", "r.json"],
    ["run", "--config", "c.yaml", "--quiet", "--report", "r.json"],
    ["-q", "run", "--report", "r.json", "--config", "c.yaml"],
    ["--config", "other.yaml", "run", "--quiet", "--config", "c.yaml", "--report", "r.json"],
])
def test_options_mean_the_same_before_and_after_the_subcommand(argv: list[str]) -> None:
    args = parse_args(argv)
    assert (args.config, args.quiet, args.verbose, args.report) == (Path("c.yaml"), True, 0, Path("r.json"))


@pytest.mark.parametrize("argv", [
    ["feeds", "import", "x.opml", "--config", "c.yaml", "-v"],
    ["feeds", "--config", "c.yaml", "import", "x.opml", "-v"],
    ["-v", "--config", "c.yaml", "feeds", "import", "x.opml"],
    ["backfill", "feed", "x.opml", "-v", "--config", "c.yaml"],
    ["backfill", "36kr", "--channel", "AI", "--since", "2024-01-01", "--config", "c.yaml", "-v"],
])
def test_nested_subcommands_take_them_too(argv: list[str]) -> None:
    args = parse_args(argv)
    assert (args.config, args.verbose, args.quiet) == (Path("c.yaml"), 1, False)
    assert parse_args(["-v", *argv]).verbose == 2


def test_every_subcommands_help_shows_the_common_options() -> None:
    def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    found = list(parsers(build_parser()))
    assert len(found) > 10
    for parser in found:
        text = parser.format_help()
        assert all(option in text for option in ("--config", "--quiet", "--verbose")), parser.prog


def test_output_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    # Far more than a pipe holds, so that ingest writes after head has gone.
    config.write_text(yaml.safe_dump({"feeds": [{"name": f"feed{n}", "url": f"https://x.example/{n}"}
                                                for n in range(3000)]}))
    done = subprocess.run(f"{sys.executable} -m ingest --config {config} status | head -1", shell=True,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.startswith("feed") and done.stderr == ""


def test_run_prints_each_feeds_line_as_it_finishes(project: Project, server: Loopback) -> None:
    server.route("/fast", (DATA / "feeds" / "36kr-official.xml").read_bytes())
    server.route("/slow", feedgen.feed(2), faults=[Fault(delay=3)])
    project.configure([{"name": "fast", "url": server.url("/fast")},
                       {"name": "slow", "url": server.url("/slow")}], http={"timeout": 10})
    started = time.monotonic()
    with subprocess.Popen([sys.executable, "-m", "ingest", "--config", str(project.config), "run"],
                          stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        arrivals = [(line.split()[0], time.monotonic() - started) for line in process.stdout]
    assert [name for name, _ in arrivals] == ["fast", "slow", "sources:", "total:"]
    assert arrivals[1][1] - arrivals[0][1] > 1.5  # fast's line came while slow was still waited for
