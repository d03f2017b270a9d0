"""Feeding a thread pool a few tasks at a time, and hearing back as each finishes; and
the locks that keep threads apart by key (a host, a URL).

The pipeline has thousands of tasks (an entry each) and must act on each as it
ends; `concurrent.futures.wait` over all pending futures costs O(pending) per
call, which made a 10,000-item feed quadratic. Here a finished task costs O(1).
"""

from __future__ import annotations

import functools
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

Tag = TypeVar("Tag")  # what tells the caller which task finished
Lock = TypeVar("Lock")  # a threading.Lock, a BoundedSemaphore: what the key's threads take


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
