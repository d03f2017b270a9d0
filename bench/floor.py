"""The floor of a run of 304s: what such a run costs before ingest's own code does anything.

A Python process that imports what every `ingest run` needs (httpx, pydantic's
BaseModel, PyYAML, tenacity, sqlite3), then makes one conditional GET per URL
through one httpx client, WORKERS at a time, as a run does. No config, state,
retries, report or archive: ingest's steady run minus this is ingest's own cost,
and naive / this is the most any program on these libraries could show here.

Usage: python -m bench.floor WORKERS URL... (URL number i answers 304 to ETag "feed-i",
as bench.run serves them)
"""

from __future__ import annotations

import sqlite3  # noqa: F401  (this and the others unused: imported for their cost alone)
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import tenacity  # noqa: F401
import yaml  # noqa: F401
from pydantic import BaseModel  # noqa: F401


def main(workers: int, urls: list[str]) -> int:
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    with httpx.Client(limits=limits) as client, ThreadPoolExecutor(workers) as pool:
        def poll(numbered: tuple[int, str]) -> int:
            index, url = numbered
            return client.get(url, headers={"If-None-Match": f'"feed-{index}"'}).status_code

        statuses = set(pool.map(poll, enumerate(urls)))
    if statuses != {304}:
        raise SystemExit(f"expected only 304s, got {sorted(statuses)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), sys.argv[2:]))
