"""A real HTTP server on 127.0.0.1 for tests, with per-path fault injection.

Each path has a `Route`: a body, a status, headers, validators (answered
with 304 on a matching conditional request), and a queue of `Fault`s, one
consumed per request: a status (with Retry-After), a body cut short, a
connection reset, or a stall. Every request is logged for assertions.
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx


@dataclass
class Fault:
    status: int | None = None
    retry_after: str | None = None
    truncate: int | None = None  # send only this many body bytes, then close
    reset: bool = False  # close with RST before answering
    delay: float = 0.0  # stall before answering


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    gzip: bool = False
    faults: list[Fault] = field(default_factory=list)
    handler: Callable[[Request], tuple[int, dict[str, str], bytes]] | None = None


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    port: int  # the client's: requests on one connection share it


class ToLoopback(httpx.HTTPTransport):
    """Sends every request to the loopback server, whatever its host (kept in Host)."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self._base = httpx.URL(base)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme="http", host=self._base.host, port=self._base.port)
        return super().handle_request(request)


class Loopback:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without this, Nagle's
            # algorithm and delayed ACKs hold each answer back ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server._serve(self, "GET")

            def do_POST(self) -> None:
                server._serve(self, "POST")

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients that hang up early (size caps, kills) are part of the tests

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> Loopback:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        """No more answers, not even a refusal: the port is closed (twice is harmless)."""
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str, body: bytes | str = b"", **kwargs: object) -> Route:
        data = body.encode() if isinstance(body, str) else body
        route = Route(body=data, **kwargs)  # type: ignore[arg-type]
        self.routes[path] = route
        return route

    def client(self) -> httpx.Client:
        """A client that reaches this server for any URL, as ingest's own client would."""
        return httpx.Client(transport=ToLoopback(self.base), follow_redirects=True)

    def hits(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _serve(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        payload = h.rfile.read(length) if length else b""
        request = Request(method, h.path, {k.lower(): v for k, v in h.headers.items()}, payload,
                          time.monotonic(), h.client_address[1])
        with self._lock:
            self.requests.append(request)
            route = self.routes.get(h.path) or self.routes.get(h.path.split("?")[0])
            fault = route.faults.pop(0) if route and route.faults else None
        if route is None:
            self._send(h, 404, {"Content-Type": "text/plain"}, b"not found")
            return
        if fault:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.reset:
                h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                h.connection.close()
                h.close_connection = True
                return
            if fault.status:
                headers = {"Content-Type": "text/plain"}
                if fault.retry_after is not None:
                    headers["Retry-After"] = fault.retry_after
                self._send(h, fault.status, headers, b"fault")
                return
        if route.handler:
            status, headers, body = route.handler(request)
            self._send(h, status, headers, body)
            return
        if self._not_modified(route, request):
            self._send(h, 304, {}, b"")
            return
        headers = {"Content-Type": route.content_type, **route.headers}
        if route.etag:
            headers["ETag"] = route.etag
        if route.last_modified:
            headers["Last-Modified"] = route.last_modified
        body = route.body
        if route.gzip:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        if fault and fault.truncate is not None:
            headers["Content-Length"] = str(len(body))
            self._send(h, route.status, headers, body[: fault.truncate], length_set=True)
            h.close_connection = True
            return
        self._send(h, route.status, headers, body)

    @staticmethod
    def _not_modified(route: Route, request: Request) -> bool:
        tag = request.headers.get("if-none-match")
        if route.etag and tag:
            return tag == route.etag
        since = request.headers.get("if-modified-since")
        return bool(route.last_modified and since == route.last_modified)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes,
              length_set: bool = False) -> None:
        try:
            h.send_response(status)
            for name, value in headers.items():
                h.send_header(name, value)
            if not length_set:
                h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            if body:
                h.wfile.write(body)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
