"""`make demo`: archive the demo feeds from 127.0.0.1, build them with Hugo, say where to look.

Nothing leaves the machine: a local server stands in for the sites (demo/www,
with {{BASE}} replaced by its address; it also plays 36kr's article pages, so
the summary-only feed is archived with its full articles), and everything is
written to a new temporary folder.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from ingest import cli, verify

WWW = Path(__file__).parent / "www"
FEEDS = {"36kr": "36kr.xml", "36krai": "ai.xml", "36kr-user": "user.xml", "notes": "notes.xml"}


class DemoHandler(SimpleHTTPRequestHandler):
    """Serves demo/www with {{BASE}} set to this server's address."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        path = Path(self.translate_path(self.path))
        if not path.suffix and path.with_suffix(".html").is_file():  # article pages: /p/<id>
            path = path.with_suffix(".html")
        if path.suffix not in (".xml", ".html") or not path.is_file():
            return super().send_head()
        modified = self.date_time_string(int(path.stat().st_mtime))
        if self.headers.get("If-Modified-Since") == modified:
            self.send_response(304)
            self.end_headers()
            return None
        base = f"http://{self.headers.get('Host', '127.0.0.1')}"
        body = path.read_bytes().replace(b"{{BASE}}", base.encode())
        self.send_response(200)
        self.send_header("Content-Type", "application/xml" if path.suffix == ".xml" else "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", modified)
        self.end_headers()
        return _Body(body)


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        data, self.data = self.data, b""
        return data

    def close(self) -> None:
        pass


def main() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(DemoHandler, directory=str(WWW)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    root = Path(tempfile.mkdtemp(prefix="ingest-demo-"))
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "archive_dir": "archive",
        "state_dir": ".ingest",
        "images": True,
        "full_content": "auto",
        "feeds": [{"name": name, "url": f"{base}/{file}"} for name, file in FEEDS.items()],
        "sources": {"36kr": {"site": base, "delay": 0.2}},
    }, allow_unicode=True), encoding="utf-8")
    print(f"== ingest run (feeds served by {base})")
    code = cli.main(["--config", str(config), "run"])
    print("\n== ingest run, again: nothing changed, so nothing is fetched or written")
    cli.main(["--config", str(config), "run"])
    server.shutdown()
    site = root / "public"
    verify.build_site(root / "archive", site)
    posts = list(verify.posts(root / "archive"))
    problems = verify.verify(root / "archive", hugo=True)
    print(f"\n== {len(posts)} posts archived under {root / 'archive'}")
    for post in posts:
        print(f"   {post.relative_to(root / 'archive')}")
    print(f"== Hugo built the site into {site}: {len(problems) or 'no'} rendering problems")
    print(f"   open {site / 'index.html'}")
    print(f"   or serve it: python3 -m http.server --directory {site} 8000")
    return code


if __name__ == "__main__":
    sys.exit(main())
