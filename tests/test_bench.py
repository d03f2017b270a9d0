"""`make bench` itself, at a toy size: it must run end to end and give every figure.

Whether the targets are met is for `make bench` at full size to say; a test
never judges speed, so only the figures' presence and sense are checked here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("naive", "cold", "steady", "large", "floor", "cold_fifth")


def test_the_benchmark_measures_every_run_and_judges_every_target(tmp_path: Path) -> None:
    figures = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--feeds", "5", "--items", "2", "--posts", "40",
         "--json", str(figures)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode in (0, 1), done.stderr  # 1: a target missed, at a size too small to judge

    data = json.loads(figures.read_text(encoding="utf-8"))
    for run in RUNS:
        seconds, peak_mb, code = data[run]
        assert seconds > 0 and peak_mb > 10 and code == 0, (run, data[run])
    assert set(data["targets"]) == {
        "cold at least 2.5x faster than naive", "steady at least 40x faster than naive",
        "large archive within 1.2x of steady", "peak memory flat in the number of feeds",
        "a search over 40 posts under 100 ms"}
    assert data["extractive_ms"] > 0 and data["startup_s"] > 0
    assert data["search_query_ms"] > 0 and data["search_command_s"] > data["search_query_ms"] / 1000
    assert "40 posts archived" in done.stdout and "targets:" in done.stdout
    assert "httpx alone" in done.stdout
