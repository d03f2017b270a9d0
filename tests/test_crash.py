"""kill -9 a real `ingest run` at several points, rerun, and check nothing is lost or doubled."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from ingest import verify
from ingest.state import DB_NAME
from tests import feedgen
from tests.conftest import Project, front_matter
from tests.loopback import Fault, Loopback
from tests.test_full_content import serve_pages, summary_feed

ITEMS = 400
PAGED = 200
PACED = [str(3_300_000_000_000_000 + n) for n in range(PAGED)]


def start_run(project: Project) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "ingest", "--config", str(project.config), "run"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[bytes], limit: float = 60) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.002)
    raise AssertionError("condition never met")


def posts_on_disk(project: Project) -> int:
    return sum(1 for _ in project.archive.glob("*/*/*/*/index.md"))


@pytest.mark.parametrize("kill_at", [0, 1, PAGED], ids=["during-fetch", "mid-way", "all-written"])
def test_kill_minus_9_then_rerun_loses_and_doubles_nothing(project: Project, server: Loopback,
                                                          kill_at: int) -> None:
    faults = [Fault(delay=1.0)] if kill_at == 0 else []
    # Each post waits for its article page, one every 15 ms (~3 s in all), and posts are named
    # every 2 s: a kill at the first post named finds the run mid-way, a third of it to come.
    server.route("/feed", summary_feed(PACED), faults=faults)
    serve_pages(server, "36kr-state.html", PACED)
    project.configure([{"name": "36kr", "url": server.url("/feed")}], http={"workers": 2},
                      full_content="auto", sources={"36kr": {"site": server.base, "delay": 0.015}})
    process = start_run(project)
    if kill_at == 0:
        wait_until(lambda: bool(server.hits("/feed")), process)
    else:
        wait_until(lambda: posts_on_disk(project) >= kill_at, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if 0 < kill_at < PAGED:  # killed mid-write: the journal shows what was in flight
        assert posts_on_disk(project) < PAGED
        with sqlite3.connect(project.state_dir / DB_NAME) as db:
            assert db.execute("SELECT count(*) FROM pending").fetchone()[0] > 0

    code, out = project.run()
    assert code == 0, out
    files = [p for p in project.archive.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp")]
    posts = project.posts()
    assert len(posts) == PAGED
    ids = [front_matter(text)[0]["ingest"]["id"] for text in posts.values()]
    assert len(set(ids)) == PAGED
    assert all(verify.check_post(project.archive / path) == [] for path in posts)
    assert not [d for d in project.archive.glob("*/*/*/*") if d.is_dir() and not any(d.iterdir())]
    code, out = project.run()  # and the state agrees with the archive
    assert code == 0 and "0 new, 0 updated" in out


def test_a_slow_feeds_posts_reach_the_disk_as_it_is_read_and_are_not_fetched_again(
        project: Project, server: Loopback) -> None:
    slow = [str(3_400_000_000_000_000 + n) for n in range(16)]
    server.route("/feed", summary_feed(slow))
    serve_pages(server, "36kr-state.html", slow)
    # A page every 0.2 s, as 36kr is asked (its delay): the one feed takes ~3.4 s.
    project.configure([{"name": "36kr", "url": server.url("/feed")}], full_content="auto",
                      sources={"36kr": {"site": server.base, "delay": 0.2}})
    process = start_run(project)
    assert wait_until(lambda: posts_on_disk(project) > 0, process)
    fetched = [r.path for r in server.requests if r.path.startswith("/p/")]
    assert len(fetched) < len(slow)  # named while its pages were still being read
    process.send_signal(signal.SIGKILL)
    process.wait()
    named = {path.split("/")[3] for path in project.posts()}
    code, out = project.run()
    assert code == 0, out
    assert len(project.posts()) == len(slow)
    fetched = [r.path for r in server.requests if r.path.startswith("/p/")]
    assert named and all(fetched.count(f"/p/{article}") == 1 for article in named)


def test_lock_names_the_holder_and_a_second_run_exits_2_at_once(project: Project,
                                                               server: Loopback) -> None:
    server.route("/feed", feedgen.feed(5), faults=[Fault(delay=3.0)])
    project.configure([{"name": "36kr", "url": server.url("/feed")}])
    first = start_run(project)
    lock = project.state_dir / "lock"
    wait_until(lambda: lock.exists() and lock.stat().st_size > 0, first)
    started = time.monotonic()
    second = subprocess.run([sys.executable, "-m", "ingest", "--config", str(project.config), "run"],
                            capture_output=True, text=True, check=False)
    assert second.returncode == 2
    assert time.monotonic() - started < 2.5
    assert f"pid {first.pid}" in second.stderr and "started" in second.stderr
    assert first.wait(timeout=30) == 0  # the first run is not harmed
    assert len(project.posts()) == 5
    assert lock.stat().st_size == 0


def test_a_killed_runs_lock_is_taken_over(project: Project, server: Loopback) -> None:
    server.route("/feed", feedgen.feed(5), faults=[Fault(delay=3.0)])
    project.configure([{"name": "36kr", "url": server.url("/feed")}])
    first = start_run(project)
    lock = project.state_dir / "lock"
    wait_until(lambda: lock.exists() and lock.stat().st_size > 0, first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert lock.stat().st_size > 0  # the dead holder is still written there
    code, _ = project.run()
    assert code == 0 and len(project.posts()) == 5


def test_state_lost_after_a_kill_still_duplicates_nothing(project: Project, server: Loopback) -> None:
    server.route("/feed", feedgen.feed(ITEMS))
    project.configure([{"name": "36kr", "url": server.url("/feed")}], http={"workers": 2})
    process = start_run(project)
    wait_until(lambda: posts_on_disk(project) >= 100, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    (project.state_dir / DB_NAME).unlink()
    assert project.run()[0] == 0
    assert len(project.posts()) == ITEMS


def test_a_gone_state_dir_is_recreated(project: Project, server: Loopback) -> None:
    server.route("/feed", feedgen.feed(3))
    project.configure([{"name": "36kr", "url": server.url("/feed")}])
    assert project.run()[0] == 0
    shutil.rmtree(project.state_dir)
    code, out = project.run()
    assert code == 0 and "0 new, 0 updated, 3 unchanged" in out and len(project.posts()) == 3
