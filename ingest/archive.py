"""The archive tree: post paths, atomic writes, and reading posts back.

    <archive_dir>/YYYY/MM/DD/<slug>/index.md     (a Hugo page bundle)

YYYY/MM/DD is the publish date in UTC; the slug is the 36kr article id, or a
Unicode slug of the title plus 8 hex digits of the entry's identity, at most
80 bytes. A post never moves once written: later runs reuse its path.

Writes go to a hidden temp file in the post's folder, are fsynced, then
renamed over the post, so a reader (or a crash) sees the old post or the new
one, never half of one. Hugo ignores the hidden temp files; `recover_post`
removes those a killed run left behind (the state knows which folders).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Iterator
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
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = (temp_dir or path.parent) / f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            temp.replace(path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)
    except OSError as exc:
        raise ArchiveError(_describe_os_error(path, exc)) from exc


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


def recover_post(archive_dir: Path, path: str) -> KnownPost | None:
    """After a killed run: clean the post's folder of temp files; the post, if it is whole."""
    target = archive_dir / path
    folder = target.parent
    for temp in folder.glob(f".*{TEMP_SUFFIX}"):
        temp.unlink(missing_ok=True)
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
    when 100,000 posts are read back."""
    from frontmatter.default_handlers import YAMLHandler

    class LibYAML(YAMLHandler):
        def load(self, fm: str, **kwargs: object) -> Any:
            return yaml.load(fm, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))

    return LibYAML()


def load_post(file: Path) -> tuple[dict[str, object], str] | None:
    """A post's front matter and body; None (and a warning) when it cannot be read."""
    import frontmatter  # only reindexing, recovery and search read posts back

    try:
        post = frontmatter.load(file, handler=_front_matter_handler())
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
        log.warning("skipping unreadable post %s: %s", file, exc)
        return None
    return post.metadata, post.content


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
