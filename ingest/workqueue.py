"""Feeding a thread pool a few tasks at a time, and hearing back as each finishes; the
locks that keep threads apart by key (a host, a URL); and worker processes for the pure
CPU work (parsing, cleaning), which threads, sharing one interpreter lock, cannot spread
over cores.

The pipeline has thousands of tasks (an entry each) and must act on each as it
ends; `concurrent.futures.wait` over all pending futures costs O(pending) per
call, which made a 10,000-item feed quadratic. Here a finished task costs O(1).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Generic, ParamSpec, TypeVar

log = logging.getLogger(__name__)

Tag = TypeVar("Tag")  # what tells the caller which task finished
Lock = TypeVar("Lock")  # a threading.Lock, a BoundedSemaphore: what the key's threads take
Params = ParamSpec("Params")
Result = TypeVar("Result")


class BoundedPool(Generic[Tag]):
    """A thread pool fed at most `limit` tasks at a time, answering as tasks finish.

    Tasks beyond the limit wait in a backlog of their own, not in the pool.
    """

    def __init__(self, pool: ThreadPoolExecutor, limit: int) -> None:
        self._pool = pool
        self._limit = limit
        self._running = 0
        self._backlog: deque[tuple[Tag, Callable[..., Any], tuple[Any, ...]]] = deque()
        self._done: queue.SimpleQueue[tuple[Tag, Future[Any]]] = queue.SimpleQueue()

    @property
    def busy(self) -> bool:
        return bool(self._running or self._backlog)

    def submit(self, tag: Tag, fn: Callable[..., Any], *args: Any) -> None:
        self._backlog.append((tag, fn, args))
        self._fill()

    def next_done(self) -> tuple[Tag, Future[Any]]:
        tag, future = self._done.get()
        self._running -= 1
        self._fill()
        return tag, future

    def _fill(self) -> None:
        while self._backlog and self._running < self._limit:
            tag, fn, args = self._backlog.popleft()
            future = self._pool.submit(fn, *args)
            self._running += 1
            future.add_done_callback(functools.partial(self._finished, tag))

    def _finished(self, tag: Tag, future: Future[Any]) -> None:
        self._done.put((tag, future))


class KeyedLocks(Generic[Lock]):
    """A lock (or a semaphore) a key, made by `make` the first time the key is asked for."""

    def __init__(self, make: Callable[[str], Lock]) -> None:
        self._make: Callable[[str], Lock] = make
        self._lock = threading.Lock()
        self._made: dict[str, Lock] = {}

    def __call__(self, key: str) -> Lock:
        with self._lock:
            made = self._made.get(key)
            if made is None:
                made = self._made[key] = self._make(key)
            return made


def spare_cores() -> int:
    """The cores this process may run on, but for the one its threads share."""
    try:
        return len(os.sched_getaffinity(0)) - 1
    except AttributeError:  # no affinity on macOS and Windows
        return (os.cpu_count() or 1) - 1


class Offload:
    """Runs pure functions in `processes` worker processes, from any thread; their arguments
    and results travel pickled, so a call is a batch (a feed, a few dozen entries): a round
    trip costs more than cleaning one entry.

    The pool starts on the first call, and calls run in the calling thread until it is up:
    the same function, the same result. So they do for good once it breaks (a worker
    killed) or if it cannot start (no processes, no /dev/shm).
    """

    def __init__(self, processes: int) -> None:
        self._processes = processes
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._up: Future[None] | None = None

    def __call__(self, fn: Callable[Params, Result], *args: Params.args, **kwargs: Params.kwargs) -> Result:
        pool = self._ready()
        if pool is not None:
            try:
                future = pool.submit(fn, *args, **kwargs)
            except (BrokenProcessPool, RuntimeError):  # lost, or closed, meanwhile
                pass
            else:
                try:
                    return future.result()
                except BrokenProcessPool as exc:
                    self._give_up(exc)
        return fn(*args, **kwargs)

    def close(self) -> None:
        with self._lock:
            pool, self._pool, self._up, self._processes = self._pool, None, None, 0
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _ready(self) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._processes > 0 and self._pool is None:
                try:
                    # Spawned, not forked: a fork would copy this process's threads' locks mid-use.
                    self._pool = ProcessPoolExecutor(self._processes, initializer=_exit_with_parent,
                                                     mp_context=multiprocessing.get_context("spawn"))
                    self._up = self._pool.submit(_warm_up)
                except (OSError, RuntimeError) as exc:
                    log.warning("no worker processes (%s): parsing in this one", exc)
                    self._processes = 0
            up, pool = self._up, self._pool
        if up is None or not up.done():
            return None
        if up.exception() is not None:
            self._give_up(up.exception())
            return None
        return pool

    def _give_up(self, exc: BaseException | None) -> None:
        log.warning("worker processes lost (%s): parsing in this one from now on", exc)
        self.close()


def _exit_with_parent() -> None:
    """A worker's first act: to end when the process that started it does, even killed
    (SIGKILL, the OOM killer), where it would wait for work forever."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_when_gone, args=(parent.sentinel,), daemon=True).start()


def _exit_when_gone(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _warm_up() -> None:
    """A worker's first task: the modules the work needs, imported before any work waits."""
    from ingest import article, parse  # noqa: F401
