"""The benchmark's feed server: static bodies with ETags, answered as a web server would.

The tests' server (tests/loopback.py: http.server, a thread a connection, faults
on demand) spends about a millisecond of Python on each request, under one
GIL: 500 conditional GETs cost it ~0.5 s, which a run of 304s would be charged
for. A real feed host (nginx, a CDN) answers a 304 in microseconds. This one
runs asyncio in a thread of its own, parses only the request line and the
If-None-Match header, and writes bytes made once per feed.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType


class FeedServer:
    """Serves `route`d paths on 127.0.0.1 with HTTP/1.1 keep-alive, until closed."""

    def __init__(self) -> None:
        self._routes: dict[bytes, tuple[bytes, bytes]] = {}  # path → (ETag, full 200 response)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-server", daemon=True)
        self._port = 0
        self._stop: asyncio.Event | None = None
        self._open: set[asyncio.StreamWriter] = set()

    def route(self, path: str, body: bytes, *, content_type: str, etag: str) -> None:
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nETag: {etag}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        self._routes[path.encode()] = (etag.encode("latin-1"), head + body)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._port}{path}"

    def __enter__(self) -> FeedServer:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
        # Keep-alive connections the clients left open end here, while the loop still runs:
        # closed, each handler reads the end of its stream and returns.
        for writer in self._open:
            writer.close()
        await asyncio.gather(*asyncio.all_tasks() - {asyncio.current_task()})

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(self._answer(head))
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            self._open.discard(writer)
            writer.close()

    def _answer(self, head: bytes) -> bytes:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        found = self._routes.get(parts[1]) if len(parts) == 3 and parts[0] == b"GET" else None
        if found is None:
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        etag, response = found
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"if-none-match" and value.strip() == etag:
                return b"HTTP/1.1 304 Not Modified\r\nETag: " + etag + b"\r\n\r\n"
        return response
