"""The bounded pool the pipeline schedules entries with: never more than its limit
in the thread pool, every task answered once, failures handed back, not raised."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ingest.errors import BlockedError
from ingest.workqueue import BoundedPool, KeyedLocks, Offload


def test_at_most_limit_tasks_are_in_the_pool_and_each_answers_once() -> None:
    running, peak, lock = 0, 0, threading.Lock()

    def task(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return n * n

    with ThreadPoolExecutor(8) as executor:
        pool: BoundedPool[int] = BoundedPool(executor, limit=3)
        for n in range(20):
            pool.submit(n, task, n)
        answers = {}
        while pool.busy:
            tag, future = pool.next_done()
            answers[tag] = future.result()
    assert answers == {n: n * n for n in range(20)} and peak <= 3


def test_a_failing_task_is_handed_back_and_the_others_go_on() -> None:
    def task(n: int) -> int:
        if n == 2:
            raise ValueError("bad input")
        return n

    with ThreadPoolExecutor(2) as executor:
        pool: BoundedPool[int] = BoundedPool(executor, limit=2)
        for n in range(5):
            pool.submit(n, task, n)
        futures = dict(pool.next_done() for _ in range(5))
    assert not pool.busy
    with pytest.raises(ValueError, match="bad input"):
        futures[2].result()
    assert [futures[n].result() for n in (0, 1, 3, 4)] == [0, 1, 3, 4]


def test_tasks_beyond_the_limit_wait_outside_the_pool() -> None:
    class Counting(ThreadPoolExecutor):
        submitted = 0

        def submit(self, *args: Any, **kwargs: Any) -> Any:
            self.submitted += 1
            return super().submit(*args, **kwargs)

    gate = threading.Event()
    with Counting(4) as executor:
        pool: BoundedPool[str] = BoundedPool(executor, limit=1)
        pool.submit("first", gate.wait)
        pool.submit("second", lambda: "ran")
        assert executor.submitted == 1  # "second" waits in the backlog, not in the pool
        gate.set()
        assert [pool.next_done()[0] for _ in range(2)] == ["first", "second"]
        assert executor.submitted == 2


def test_keyed_locks_make_one_lock_a_key_whatever_the_threads() -> None:
    made: list[str] = []

    def make(key: str) -> threading.Lock:
        made.append(key)
        return threading.Lock()

    locks = KeyedLocks(make)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(locks, ["a", "b"] * 200))
    assert sorted(made) == ["a", "b"]
    assert len({id(lock) for lock in got}) == 2 and got[0] is locks("a") and got[1] is locks("b")


def _worker_pid(_: int = 0) -> int:
    return os.getpid()


def _die_in_a_worker(parent: int) -> str:
    if os.getpid() != parent:
        os._exit(1)  # a worker killed mid-task (the OOM killer, a segfault in a parser)
    return "done here"


def _pooled(offload: Offload) -> bool:
    """Whether `offload` runs work in a worker process, once its pool is up (spawning one
    takes a few tenths of a second; calls made meanwhile run here)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if offload(_worker_pid) != os.getpid():
            return True
        time.sleep(0.05)
    return False


def test_offload_without_processes_runs_each_call_here() -> None:
    offload = Offload(0)
    assert offload(_worker_pid) == os.getpid()
    assert offload(divmod, 7, 2) == (3, 1)
    offload.close()


def test_offload_runs_calls_in_a_worker_process_once_it_is_up_and_hands_back_errors() -> None:
    offload = Offload(1)
    try:
        assert _pooled(offload)
        assert offload(divmod, 7, 2) == (3, 1)
        with pytest.raises(ZeroDivisionError):
            offload(divmod, 1, 0)
        # An error of ingest's own comes back whole, whatever its constructor takes.
        with pytest.raises(BlockedError) as raised:
            offload(_raise_blocked, "https://example.com/feed")
        assert "https://example.com/feed" in str(raised.value) and raised.value.wall == "a captcha"
        assert offload(_worker_pid) != os.getpid()  # raised there, handed back, the pool whole
    finally:
        offload.close()
    assert offload(_worker_pid) == os.getpid()  # closed: here again


def _raise_blocked(url: str) -> None:
    raise BlockedError(url, "a bot wall answered", wall="a captcha")


def test_offload_whose_worker_is_killed_goes_on_here_with_the_same_call() -> None:
    offload = Offload(1)
    try:
        assert _pooled(offload)
        assert offload(_die_in_a_worker, os.getpid()) == "done here"
        assert offload(_worker_pid) == os.getpid()  # and every call after it
    finally:
        offload.close()


_KILLED_PARENT = """
import os, sys, time
from ingest.workqueue import Offload

def pid():
    return os.getpid()

if __name__ == "__main__":
    offload = Offload(1)
    deadline = time.monotonic() + 60
    while offload(pid) == os.getpid() and time.monotonic() < deadline:
        time.sleep(0.05)
    print(offload(pid), flush=True)
    time.sleep(120)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="tells a process's state by /proc (Linux)")
def test_offload_worker_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(_KILLED_PARENT, encoding="utf-8")
    parent = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert worker != parent.pid and _running(worker)
        parent.send_signal(signal.SIGKILL)  # no clean-up of its own: a cron timeout's kill -9
        parent.wait()
        deadline = time.monotonic() + 30
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(worker)
    finally:
        parent.kill()
        parent.wait()


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except FileNotFoundError:
        return False
    return "zombie" not in status
