"""The archive tree: post paths, atomic writes, and reading posts back.

    <archive_dir>/YYYY/MM/DD/<slug>/index.md     (a Hugo page bundle)

YYYY/MM/DD is the publish date in UTC; the slug is the 36kr article id, or a
Unicode slug of the title plus 8 hex digits of the entry's identity, at most
80 bytes. A post never moves once written: later runs reuse its path.

Writes go to a hidden temp file in the post's folder and are renamed over the
post once whole on disk (fsync, or for a run's posts one sync for all the files
of the feeds finished meanwhile: `Stage`, `commit_all`), so a reader (or a
crash) sees the old post or the new one, never half of one. Hugo ignores the
hidden temp files; `recover_post` removes those a killed run left behind (the
state knows which folders).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import itertools
import logging
import os
import re
import secrets
import tempfile
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import yaml

from ingest.errors import ArchiveError
from ingest.models import KnownPost

log = logging.getLogger(__name__)

MAX_SLUG_BYTES = 80
TEMP_SUFFIX = ".tmp"
# Temp files are named by process and count: unique without asking for random bytes.
_TEMP_PREFIX = f"{secrets.token_hex(3)}-"
_TEMP_COUNT = itertools.count()
_NOT_WORD = re.compile(r"[^\w\s-]")
_SEPARATORS = re.compile(r"[\s_-]+")


def slug_for(key: str, title: str) -> str:
    article = key.removeprefix("36kr:")
    if article != key and article.isascii() and article.isdigit():
        return article
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    words = slugify(title)
    if not words:
        return digest
    return f"{_truncate_utf8(words, MAX_SLUG_BYTES - len(digest) - 1)}-{digest}"


def slugify(text: str) -> str:
    """Lowercase words joined by '-': letters of any script kept, the rest dropped."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _SEPARATORS.sub("-", _NOT_WORD.sub("", text)).strip("-")


def _truncate_utf8(text: str, limit: int) -> str:
    return text.encode()[:limit].decode(errors="ignore").rstrip("-")


def post_path(date: datetime, slug: str) -> str:
    return f"{date.astimezone(UTC):%Y/%m/%d}/{slug}/index.md"


def write_atomic(path: Path, data: bytes, *, temp_dir: Path | None = None) -> None:
    """Replace `path` with `data` so that no reader ever sees a partial file.

    The temp file goes beside `path`, or into `temp_dir` (on the same file system).
    """
    try:
        temp = _write_temp(path, data, temp_dir)
        try:
            _rename(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)
    except OSError as exc:
        raise ArchiveError(_describe_os_error(path, exc)) from exc


def _write_temp(path: Path, data: bytes, temp_dir: Path | None, *, sync: bool = True) -> Path:
    temp = (temp_dir or path.parent) / f".{path.name}.{_TEMP_PREFIX}{next(_TEMP_COUNT)}{TEMP_SUFFIX}"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileNotFoundError:  # a new folder (most writes go to folders that exist: no mkdir)
        temp.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return temp


def _rename(temp: Path, path: Path) -> None:
    try:
        temp.replace(path)
    except FileNotFoundError:
        if not temp.exists():
            raise
        path.parent.mkdir(parents=True, exist_ok=True)  # written from a folder of temp files
        temp.replace(path)


class Stage:
    """Files written now and given their names together, by `commit`: one sync makes them
    all whole on disk before any is renamed, and one more makes the names last, where
    writing each atomically costs two syncs a file. Safe to write from any thread;
    `commit` from one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._staged: list[tuple[int, Path, Path]] = []  # (rank, temp file, its name to be)

    def write(self, path: Path, data: bytes, *, temp_dir: Path | None = None, rank: int = 9) -> None:
        """Write `path`'s data now, name it at `commit`: lower ranks first, so that a file
        naming others (a post, its record) is named after them, whichever thread wrote what."""
        try:
            temp = _write_temp(path, data, temp_dir, sync=False)
        except OSError as exc:
            raise ArchiveError(_describe_os_error(path, exc)) from exc
        with self._lock:
            self._staged.append((rank, temp, path))

    def __len__(self) -> int:
        with self._lock:
            return len(self._staged)

    def commit(self) -> None:
        commit_all([self])

    def _take(self) -> list[tuple[Path, Path]]:
        """The files staged, by rank; the stage is empty after."""
        with self._lock:
            ranked, self._staged = sorted(self._staged, key=lambda s: s[0]), []
        return [(temp, path) for _, temp, path in ranked]

    def discard(self) -> None:
        """Forget what was written and not committed (a run that ends on an error)."""
        self._discard(self._take())

    @staticmethod
    def _discard(staged: list[tuple[Path, Path]]) -> None:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)


def commit_all(stages: Iterable[Stage]) -> None:
    """Name the files of several stages with the same two syncs (each stage's in rank order)."""
    staged = [item for stage in stages for item in stage._take()]
    if not staged:
        return
    done = 0
    try:
        os.sync()
        for temp, path in staged:
            _rename(temp, path)
            done += 1
        os.sync()
    except OSError as exc:
        Stage._discard(staged[done:])
        raise ArchiveError(_describe_os_error(staged[min(done, len(staged) - 1)][1], exc)) from exc


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe_os_error(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"disk full while writing {path}: free space, then run again"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: {exc.strerror}; check archive_dir's permissions"
    return f"cannot write {path}: {exc}"


def check_writable(archive_dir: Path) -> None:
    """Fail before any work if posts cannot be written at all.

    The probe is a file without a name (O_TMPFILE): a run killed while probing
    leaves nothing in the archive for a commit to publish.
    """
    try:
        archive_dir.mkdir(parents=True, exist_ok=True)
        for leftover in archive_dir.glob(f"..ingest-write-check.*{TEMP_SUFFIX}"):  # named probes of old
            leftover.unlink()
        with tempfile.TemporaryFile(dir=archive_dir) as probe:
            probe.write(b"\n")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise ArchiveError(_describe_os_error(archive_dir, exc)) from exc


def clear_temps(folder: Path) -> None:
    """Remove the temp files a killed writer left in a post's folder (never named, never read)."""
    for temp in folder.glob(f".*{TEMP_SUFFIX}"):
        temp.unlink(missing_ok=True)


def recover_post(archive_dir: Path, path: str) -> KnownPost | None:
    """After a killed run: clean the post's folder of temp files; the post, if it is whole."""
    target = archive_dir / path
    folder = target.parent
    clear_temps(folder)
    if target.exists():
        return read_post(target, path)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return None


def read_posts(archive_dir: Path) -> Iterator[KnownPost]:
    """Every post ingest wrote, from its front matter (the archive is the truth)."""
    for path in sorted(archive_dir.glob("*/*/*/*/index.md")):
        known = read_post(path, path.relative_to(archive_dir).as_posix())
        if known:
            yield known


def read_post(file: Path, path: str) -> KnownPost | None:
    loaded = load_post(file)
    return known_post(loaded[0], path) if loaded else None


@functools.cache
def _front_matter_handler() -> Any:
    """python-frontmatter's YAML handler on libyaml's parser: 5× faster, which counts
    when 100,000 posts are read back (only reindexing, recovery, search and verify read
    posts back: imported then)."""
    from frontmatter.default_handlers import YAMLHandler

    class LibYAML(YAMLHandler):
        def load(self, fm: str, **kwargs: object) -> Any:
            return yaml.load(fm, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))

    return LibYAML()


def load_post(file: Path) -> tuple[dict[str, object], str] | None:
    """A post's front matter and body; None (and a warning) when it cannot be read."""
    try:
        return split_front_matter(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
        log.warning("skipping unreadable post %s: %s", file, exc)
        return None


def split_front_matter(text: str) -> tuple[dict[str, object], str]:
    """The one reader of a post's front matter: its mapping, and the body exactly as written
    (python-frontmatter's own load strips it: the verifier judges its every line). Raises
    ValueError, or yaml.YAMLError."""
    handler = _front_matter_handler()
    if not text.startswith("---\n") or "\n---\n" not in text[3:]:
        raise ValueError("no front matter")
    front, body = handler.split(text)
    meta = handler.load(front)
    if not isinstance(meta, dict):
        raise ValueError("front matter is not a mapping")
    return meta, body


def known_post(meta: dict[str, object], path: str) -> KnownPost | None:
    ours = meta.get("ingest")
    categories = meta.get("categories")
    if not isinstance(ours, dict) or not isinstance(categories, list) or not categories:
        return None
    try:
        date = parsedate_to_datetime(str(meta["date"])).astimezone(UTC)
        lastmod = parsedate_to_datetime(str(meta.get("lastmod", meta["date"]))).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        return None
    return KnownPost(key=str(ours.get("id")), feed=str(categories[0]), path=path,
                     source_hash=str(ours.get("source")), date=date, lastmod=lastmod)
