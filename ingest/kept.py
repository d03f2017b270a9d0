"""Kept sources: what every post was made from, as received, to make it again offline.

    <sources_dir>/objects/ab/cdef….gz            one document's bytes (a feed, a 36kr flow page,
                                                 an article page), gzipped, named by their SHA-256
    <sources_dir>/posts/YYYY/MM/DD/<slug>.json   a post's record: its id, feed, date, lastmod and
                                                 source hash, and the documents it was made from
                                                 (URL asked, URL answering, content type, time, digest)

Content-addressed: a feed fetched a thousand times unchanged is one object, and
a 304, or a poll that archives nothing, stores nothing. Objects are gzipped
without a timestamp, so the same bytes always give the same file: the folder is
committed with the archive, and each commit adds only what is new.

A post's documents and record are written before the post itself: a run
killed in between leaves a record whose post the next run (its journal) or
`ingest rebuild` writes, never a post whose sources are lost.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from ingest import archive
from ingest.errors import SourceError
from ingest.models import Document, KnownPost

FORMAT = 1
GZIP_LEVEL = 6  # nearly level 9's size at a third of its time; fixed, so the bytes are too


@dataclass(frozen=True, slots=True)
class Ref:
    """A kept document, as a record names it."""

    kind: str
    asked: str
    url: str
    content_type: str
    fetched: datetime
    sha256: str
    size: int  # bytes as received


@dataclass(frozen=True, slots=True)
class PostRecord:
    """What a post was made from, and what it was written with."""

    post: KnownPost
    link: str | None
    entry: Ref  # the document the entry was read from
    page: Ref | None  # the article page read for it, if one was


class Kept:
    """The sources folder; safe to use from any thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._present: set[str] = set()
        self.documents = 0  # stored by this process: a document kept before is not counted
        self.bytes = 0

    def keep(self, document: Document) -> Ref:
        """Store `document` (once, whoever asks) and name it."""
        digest = hashlib.sha256(document.body).hexdigest()
        with self._lock:
            known = digest in self._present
            self._present.add(digest)
        target = self._object(digest)
        if not known and not target.exists():
            data = gzip.compress(document.body, compresslevel=GZIP_LEVEL, mtime=0)
            archive.write_atomic(target, data)
            with self._lock:
                self.documents += 1
                self.bytes += len(data)
        return Ref(document.kind, document.asked, document.url, document.content_type,
                   document.fetched, digest, len(document.body))

    def read(self, ref: Ref) -> bytes:
        """The bytes `ref` names; SourceError when they are missing or not what was kept."""
        target = self._object(ref.sha256)
        try:
            body = gzip.decompress(target.read_bytes())
        except FileNotFoundError:
            raise SourceError(f"its {ref.kind} ({ref.url}) is missing from {self.folder}: "
                              f"objects/{ref.sha256[:2]}/{ref.sha256[2:]}.gz") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(f"its {ref.kind} ({ref.url}) is corrupt in {target}: {exc}") from None
        if hashlib.sha256(body).hexdigest() != ref.sha256:
            raise SourceError(f"its {ref.kind} ({ref.url}) is corrupt in {target}: "
                              "the bytes are not those kept")
        return body

    def save(self, record: PostRecord) -> None:
        post = record.post
        data = {"format": FORMAT, "id": post.key, "feed": post.feed, "post": post.path,
                "link": record.link, "date": _iso(post.date), "lastmod": _iso(post.lastmod),
                "source": post.source_hash, "entry": _ref_json(record.entry),
                "page": _ref_json(record.page) if record.page else None}
        text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
        archive.write_atomic(self.record_file(post.path), text.encode())

    def has_record(self, post_path: str) -> bool:
        return self.record_file(post_path).is_file()

    def load(self, post_path: str) -> PostRecord:
        """The record of the post at `post_path`; SourceError when it is missing or unreadable."""
        file = self.record_file(post_path)
        try:
            data = json.loads(file.read_bytes())
            post = KnownPost(key=data["id"], feed=data["feed"], path=data["post"],
                             source_hash=data["source"], date=_time(data["date"]),
                             lastmod=_time(data["lastmod"]))
            return PostRecord(post, data["link"], _ref(data["entry"]),
                              _ref(data["page"]) if data["page"] else None)
        except FileNotFoundError:
            raise SourceError("no sources kept (archived before sources were kept, or not by "
                              "ingest)") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SourceError(f"its record {file} is unreadable: {exc!r}") from None

    def posts(self) -> Iterator[str]:
        """The post path of every record, in date order."""
        root = self.folder / "posts"
        for file in sorted(root.glob("*/*/*/*.json")):
            yield f"{file.relative_to(root).with_suffix('').as_posix()}/index.md"

    def record_file(self, post_path: str) -> Path:
        folder = PurePosixPath(post_path).parent
        return self.folder / "posts" / f"{folder}.json"

    def usage(self) -> tuple[int, int]:
        """(documents, bytes) of everything kept."""
        count = size = 0
        objects = self.folder / "objects"
        if not objects.is_dir():
            return 0, 0
        for shard in os.scandir(objects):
            if shard.is_dir():
                for entry in os.scandir(shard.path):
                    if entry.name.endswith(".gz"):
                        count += 1
                        size += entry.stat().st_size
        return count, size

    def _object(self, digest: str) -> Path:
        return self.folder / "objects" / digest[:2] / f"{digest[2:]}.gz"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _ref_json(ref: Ref) -> dict[str, object]:
    return {"kind": ref.kind, "asked": ref.asked, "url": ref.url, "content_type": ref.content_type,
            "fetched": _iso(ref.fetched), "sha256": ref.sha256, "bytes": ref.size}


def _ref(data: dict[str, object]) -> Ref:
    return Ref(str(data["kind"]), str(data["asked"]), str(data["url"]), str(data["content_type"]),
               _time(str(data["fetched"])), str(data["sha256"]), int(str(data["bytes"])))
