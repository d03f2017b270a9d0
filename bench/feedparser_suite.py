"""`make bench-feedparser`: ingest over feedparser's own test suite, on 127.0.0.1.

feedparser's sdist carries ~2,200 small feeds that exercise every corner of
RSS and Atom (wellformed, illformed, entities, encoding). They are other
people's files, so they are fetched from the package index at bench time
(pip download, cached in out/), never kept in this repository. Each is served
on loopback with the HTTP headers its comment asks for, as one feed of one
config, and `ingest run` runs three times:

    first        everything new
    second       the same bodies (no validators): nothing may be written again
    third        the same: still nothing

Printed: feeds ok and failed, the reasons of the failures, posts written, posts
rewritten by the later runs (must be 0), tracebacks (must be none), seconds.

Usage: python -m bench.feedparser_suite [--limit N]
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import feedparser
import yaml

from tests.loopback import Loopback

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "out" / "feedparser-sdist"
FOLDERS = ("wellformed", "illformed", "entities", "encoding")
_HEADER = re.compile(rb"^Header:\s*([\w-]+):\s*(.+?)\s*$", re.MULTILINE)


def suite() -> Path:
    """feedparser's tests/ folder, from the sdist of the installed version."""
    version = feedparser.__version__
    tests = CACHE / f"feedparser-{version}" / "tests"
    if not tests.is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
                        ":all:", f"feedparser=={version}", "--dest", str(CACHE)], check=True)
        with tarfile.open(next(CACHE.glob(f"feedparser-{version}.tar.gz"))) as archive:
            archive.extractall(CACHE, filter="data")
    return tests


def headers_of(body: bytes) -> dict[str, str]:
    """The HTTP headers a test file's comment asks for (feedparser's own convention)."""
    return {name.decode(): value.decode(errors="replace") for name, value in _HEADER.findall(body[:2000])
            if name.lower() not in (b"status", b"location")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N files (0: all)")
    args = parser.parse_args()
    tests = suite()
    files = sorted(p for folder in FOLDERS for p in (tests / folder).rglob("*") if p.is_file())
    files = files[: args.limit] if args.limit else files
    work = Path(tempfile.mkdtemp(prefix="ingest-feedparser-"))
    try:
        with Loopback() as server:
            feeds = []
            for n, path in enumerate(files):
                body = path.read_bytes()
                headers = headers_of(body)
                content_type = next((v for k, v in headers.items() if k.lower() == "content-type"),
                                    "application/xml")
                other = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                route = f"/{n}/{path.relative_to(tests).as_posix()}"
                server.route(route, body, content_type=content_type, headers=other)
                feeds.append({"name": f"f{n}", "url": server.url(route)})
            config = work / "config.yaml"
            config.write_text(yaml.safe_dump({"images": False, "full_content": "never",
                                              "http": {"per_host": 8, "attempts": 1}, "feeds": feeds}))
            print(f"feedparser {feedparser.__version__}'s suite: {len(files)} files served on 127.0.0.1",
                  flush=True)
            runs = [run(config) for _ in range(3)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report(runs)


def run(config: Path) -> tuple[float, str, int]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ingest", "--config", str(config), "run", "--force"],
                          capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done.stdout + done.stderr, done.returncode


def report(runs: list[tuple[float, str, int]]) -> int:
    first = runs[0][1]
    failed = [line for line in first.splitlines() if re.match(r"^f\d+\s+error\s", line)]
    reasons = collections.Counter(re.sub(r"\s*\(http://127\.0\.0\.1[^)]*\)", "", line.split(None, 2)[2])
                                  .split(":")[0] for line in failed)
    totals = [re.search(r"total: (\d+) new, (\d+) updated", out) for _, out, _ in runs]
    new = int(totals[0].group(1)) if totals[0] else -1
    rewritten = sum(int(t.group(1)) + int(t.group(2)) if t else 1 for t in totals[1:])
    tracebacks = sum(out.count("Traceback") for _, out, _ in runs)
    ok = sum(1 for line in first.splitlines() if re.match(r"^f\d+\s+(ok|not-modified)\s", line))
    print(f"\nfeeds ok {ok}, failed {len(failed)}; posts written {new}; rewritten by runs 2 and 3: "
          f"{rewritten}; tracebacks: {tracebacks}")
    print("runs: " + ", ".join(f"{seconds:.1f} s (exit {code})" for seconds, _, code in runs))
    print("why feeds failed:")
    for reason, count in reasons.most_common(12):
        print(f"  {count:5}  {reason[:100]}")
    return 0 if rewritten == 0 and tracebacks == 0 and all(code in (0, 1) for _, _, code in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
