"""Kept sources: what every post was made from, as received, to make it again offline.

    <sources_dir>/objects/ab/cdef….gz            one document's bytes (a 36kr flow page, an article
                                                 page), gzipped, named by their SHA-256
    <sources_dir>/objects/ab/cdef….chunks        a feed: the names of its pieces, one an item, each
                                                 itself an object (…gz named by 32 hex digits)
    <sources_dir>/posts/YYYY/MM/DD/<slug>.json   a post's record: its id, feed, date, lastmod and
                                                 source hash, and the documents it was made from
                                                 (URL asked, URL answering, content type, time, digest)

Content-addressed: a feed fetched a thousand times unchanged is one object, and
a 304, or a poll that archives nothing, stores nothing. A feed that changed by
one new item stores that item, its head and the list of its pieces: the bytes
as received come back whole, while a year of polls costs about what its items
do. Objects are gzipped without a timestamp, so the same bytes always give the
same file: the folder is committed with the archive, and each commit adds only
what is new.

A post's documents, its record and the post are named in that order (see
`archive.Stage`): a run killed in between leaves a record whose post the next
run (its journal) or `ingest rebuild` writes, never a post whose sources are
lost.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from ingest import archive
from ingest.errors import SourceError
from ingest.models import Document, KnownPost
from ingest.workqueue import KeyedLocks

FORMAT = 1
GZIP_LEVEL = 6  # nearly level 9's size at a third of its time; fixed, so the bytes are too
# A feed is kept in pieces, one an item, cut before each item and before its end: the
# next version of a feed shares all its items but the new ones, and stores only those.
# Matched, not looked ahead for: a pattern opening on "<" is searched for that byte alone
# (15 times faster than a lookahead tried at every offset of the feed).
_ITEM_START = re.compile(rb"<(?:[\w-]+:)?(?:item|entry)[\s>/]|</(?:[\w-]+:)?(?:channel|feed)>")
INCOMING = ".incoming"  # temp files, renamed into place once whole
# The order a stage names files in (posts come last): what a file names is there before it.
OBJECT, CHUNK_LIST, RECORD = 0, 1, 2
CHUNK_NAME = 32  # hex digits of a piece's SHA-256: the whole document is checked with all 64


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
    """The sources folder; safe to use from any thread.

    Documents and records are written through a run's `archive.Stage`, with the posts
    they belong to: they are on disk, under their names, once the stage is committed.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._incoming = folder / INCOMING
        self._lock = threading.Lock()
        self._objects = KeyedLocks(lambda name: threading.Lock())  # held while it is staged
        self._staged: dict[str, archive.Stage] = {}  # object name → the stage writing it
        self._swept = False
        self.documents = 0  # stored by this process: a document kept before is not counted
        self.bytes = 0  # their size, compressed (records, small, not counted)

    def keep(self, document: Document, stage: archive.Stage) -> Ref:
        """Stage `document`, unless it is kept already, and name it."""
        digest = document.sha256
        with self._claimed(digest, stage) as mine:
            if mine:
                self._stage_document(document, stage)
        return Ref(document.kind, document.asked, document.url, document.content_type,
                   document.fetched, digest, len(document.body))

    def _stage_document(self, document: Document, stage: archive.Stage) -> None:
        parts = pieces_of(document.body) if document.kind == "feed" else [document.body]
        if len(parts) == 1:
            self._write(stage, self._object(document.sha256), _gzip(document.body), rank=OBJECT)
        else:
            names = [hashlib.sha256(part).hexdigest()[:CHUNK_NAME] for part in parts]
            for name, part in zip(names, parts, strict=True):
                with self._claimed(name, stage) as mine:
                    if mine:
                        self._write(stage, self._object(name), _gzip(part), rank=OBJECT)
            # Plain text: git stores each version as a delta of the one before.
            self._write(stage, self._chunk_list(document.sha256),
                        "".join(f"{n}\n" for n in names).encode(), rank=CHUNK_LIST)
        with self._lock:
            self.documents += 1

    @contextmanager
    def _claimed(self, name: str, stage: archive.Stage) -> Iterator[bool]:
        """Whether `stage` must write object `name` (it is neither on disk nor in `stage`),
        held until it has: another thread asking for `name` waits, so that what it writes
        next (a record naming it) comes after it in the stage. Staged by another stage
        only, it is staged again: each stage holds all that its files name."""
        with self._lock:
            if not self._swept:
                self._sweep()
        with self._objects(name):
            with self._lock:
                mine = self._staged.get(name) is not stage
            mine = mine and not (self._object(name).exists() or self._chunk_list(name).exists())
            yield mine
            if mine:
                with self._lock:
                    self._staged[name] = stage

    def _write(self, stage: archive.Stage, target: Path, data: bytes, *, rank: int) -> None:
        stage.write(target, data, temp_dir=self._incoming, rank=rank)
        if rank != RECORD:
            with self._lock:
                self.bytes += len(data)

    def _sweep(self) -> None:
        """Temp files a killed run left: never committed, never read."""
        if self._incoming.is_dir():
            for leftover in self._incoming.iterdir():
                leftover.unlink(missing_ok=True)
        self._incoming.mkdir(parents=True, exist_ok=True)
        self._swept = True

    def read(self, ref: Ref) -> bytes:
        """The bytes `ref` names; SourceError when they are missing or not what was kept."""
        digest = ref.sha256
        try:
            if self._chunk_list(digest).exists():
                names = self._chunk_list(digest).read_text(encoding="ascii").split()
                body = b"".join(gzip.decompress(self._object(name).read_bytes()) for name in names)
            else:
                body = gzip.decompress(self._object(digest).read_bytes())
        except FileNotFoundError as exc:
            raise SourceError(f"its {ref.kind} ({ref.url}) is missing from {self.folder}: "
                              f"{Path(str(exc.filename)).relative_to(self.folder)}") from None
        except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
            raise SourceError(f"its {ref.kind} ({ref.url}) is corrupt in {self.folder}: {exc}") from None
        if hashlib.sha256(body).hexdigest() != digest:
            raise SourceError(f"its {ref.kind} ({ref.url}) is corrupt in {self.folder}: "
                              "the bytes are not those kept")
        return body

    def save(self, record: PostRecord, stage: archive.Stage) -> None:
        post = record.post
        data = {"format": FORMAT, "id": post.key, "feed": post.feed, "post": post.path,
                "link": record.link, "date": _iso(post.date), "lastmod": _iso(post.lastmod),
                "source": post.source_hash, "entry": _ref_json(record.entry),
                "page": _ref_json(record.page) if record.page else None}
        text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
        self._write(stage, self.record_file(post.path), text.encode(), rank=RECORD)

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
                    size += entry.stat().st_size
                    # A document is a whole one, or a list of pieces; pieces are not counted.
                    count += entry.name.endswith(".chunks") or len(entry.name) == len(".gz") + 62
        return count, size

    def _object(self, name: str) -> Path:
        return self.folder / "objects" / name[:2] / f"{name[2:]}.gz"

    def _chunk_list(self, digest: str) -> Path:
        return self.folder / "objects" / digest[:2] / f"{digest[2:]}.chunks"


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


def pieces_of(body: bytes) -> list[bytes]:
    """`body` cut before each item; joined, the pieces are `body`."""
    cuts = [m.start() for m in _ITEM_START.finditer(body) if m.start()]
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True) if a != b]


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)
