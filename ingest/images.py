"""Every image of an article, archived beside its post and shown from there.

Each ``<img src>``, and each ``srcset`` candidate (up to `MAX_PER_ELEMENT` an
element), is downloaded into the post's folder (a Hugo page bundle) as
``<16 hex of sha256(URL)>.<ext>``: the name is stable across runs, and the
extension comes from the bytes (JPEG, PNG, GIF, WebP, AVIF), never from the URL
(36kr's image URLs have none). SVG is refused: it can carry scripts. The URL
downloaded is the image's with repeated ``x-oss-process`` segments collapsed
(36kr's CDN chains ``format,jpg/interlace,1`` several times), so one image
under two chains is one file.

An image is downloaded once, ever: one already in the post's folder is kept;
one another post holds (this run or an earlier one, says the state) is copied
from there. Requests carry a Referer the CDN accepts (``https://36kr.com/`` for
36kr's CDNs, else the article's page) and a browser's Accept header; the
fetcher keeps to its per-host limit.

A failure never blocks the post: that image keeps its remote URL, the failure
is recorded, and later runs try again, `MAX_ATTEMPTS` times in all.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import lxml.html

from ingest import archive, sniff
from ingest.cache import WorkerCache
from ingest.clean import parse_fragment, serialize
from ingest.errors import ArchiveError, IngestError, RefusedAddressError
from ingest.fetch import Fetcher
from ingest.models import ImageOutcome

MAX_ATTEMPTS = 5
MAX_PER_ELEMENT = 4
IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
KR36_CDNS = ("36krcdn.com", "36krcnd.com", "36kr.com")
_OSS = re.compile(r"(x-oss-process=image)((?:/[^/&]+)+)")


def download_url(url: str) -> str:
    """`url` with 36kr's repeated ``x-oss-process`` operations written once."""
    def collapse(match: re.Match[str]) -> str:
        steps = match.group(2).split("/")[1:]
        return match.group(1) + "".join(f"/{s}" for s in dict.fromkeys(steps))

    return _OSS.sub(collapse, url)


def file_stem(url: str) -> str:
    return hashlib.sha256(download_url(url).encode()).hexdigest()[:16]


def referer_for(image_url: str, article_url: str | None) -> str:
    host = urlsplit(image_url).hostname or ""
    if host.endswith(KR36_CDNS):
        return "https://36kr.com/"
    if article_url:
        return article_url
    parts = urlsplit(image_url)
    return urlunsplit((parts.scheme, parts.netloc, "/", "", ""))


class ImageStore:
    """Archives a run's images: each URL fetched at most once, from any worker thread."""

    def __init__(self, fetcher: Fetcher, archive_dir: Path, cache: WorkerCache, *,
                 max_bytes: int, workers: int = 4) -> None:
        self._fetcher = fetcher
        self._archive = archive_dir
        self._cache = cache
        self._max_bytes = max_bytes
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="ingest-images")
        self._lock = threading.Lock()
        self._url_locks: dict[str, threading.Lock] = {}
        self._archived: dict[str, tuple[str, str]] = {}  # URL → (file, folder), this run
        self._failed: dict[str, ImageOutcome] = {}  # URL → its failure, this run

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def localize(self, html: str, folder: str, article_url: str | None) -> tuple[str, list[ImageOutcome]]:
        """`html` with its images archived in `folder` and pointing there; what became of each."""
        root = parse_fragment(html)
        wanted: dict[str, list[tuple[lxml.html.HtmlElement, str]]] = {}
        for element in root.iter("img", "source"):
            urls = [element.get("src", "")] if element.tag == "img" else []
            urls += [c.split()[0] for c in element.get("srcset", "").split(",") if c.split()]
            for url in list(dict.fromkeys(u for u in urls if _remote(u)))[:MAX_PER_ELEMENT]:
                wanted.setdefault(download_url(url), []).append((element, url))
        if not wanted:
            return html, []
        outcomes = list(self._pool.map(lambda u: self.archive(u, folder, article_url), wanted))
        local = {o.url: o.file for o in outcomes if o.file}
        for url, uses in wanted.items():
            if url in local:
                for element, original in uses:
                    _point_at(element, original, local[url])
        return serialize(root), outcomes

    def archive(self, url: str, folder: str, article_url: str | None) -> ImageOutcome:
        """One image into `folder`: found there, copied from another post, or downloaded."""
        url = download_url(url)
        with self._lock:
            lock = self._url_locks.setdefault(url, threading.Lock())
        with lock:  # two posts wanting one new image: the second waits and copies
            target = self._archive / folder
            stem = file_stem(url)
            present = next(iter(_files(target, stem)), None)
            if present is not None:
                return self._remember(url, present.name, folder)
            if url in self._failed:
                return self._failed[url]
            known = self._archived.get(url) or self._from_cache(url)
            if isinstance(known, ImageOutcome):
                return known
            if known is not None and _copy(self._archive / known[1] / known[0], target / known[0]):
                return self._remember(url, known[0], folder)
            return self._download(url, folder, stem, article_url)

    def _from_cache(self, url: str) -> tuple[str, str] | ImageOutcome | None:
        record = self._cache.image(url)
        if record is None:
            return None
        file, holder, failures = record
        if file and holder:
            return file, holder
        if failures >= MAX_ATTEMPTS:
            return ImageOutcome(url, error=f"gave up after {failures} attempts", final=True)
        return None

    def _download(self, url: str, folder: str, stem: str, article_url: str | None) -> ImageOutcome:
        try:
            response = self._fetcher.get(url, max_bytes=self._max_bytes, headers={
                "Accept": IMAGE_ACCEPT, "Referer": referer_for(url, article_url)})
            extension = sniff.image_type(response.body)
            if extension is None:
                kind = "an SVG (refused: it can carry scripts)" if sniff.is_svg(response.body) else \
                    f"not an image ({response.content_type or 'no type'}, {len(response.body)} bytes)"
                raise IngestError(f"{kind} ({url})")
            archive.write_atomic(self._archive / folder / f"{stem}{extension}", response.body)
        except ArchiveError:
            raise
        except IngestError as exc:
            # A refused address stays refused: kept remote for good, no retry.
            failure = ImageOutcome(url, error=str(exc), final=isinstance(exc, RefusedAddressError))
            with self._lock:
                self._failed[url] = failure
            return failure
        return self._remember(url, f"{stem}{extension}", folder, downloaded=True)

    def _remember(self, url: str, file: str, folder: str, *, downloaded: bool = False) -> ImageOutcome:
        with self._lock:
            self._archived.setdefault(url, (file, folder))
        return ImageOutcome(url, file=file, folder=folder, downloaded=downloaded)


def _remote(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https")


def _files(folder: Path, stem: str) -> list[Path]:
    return sorted(folder.glob(f"{stem}.*")) if folder.is_dir() else []


def _copy(source: Path, target: Path) -> bool:
    """Put a copy of `source` at `target` (a hard link where possible); False if it is gone."""
    if not source.is_file():
        return False
    if target.exists():
        return True
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
    except OSError:
        try:
            archive.write_atomic(target, source.read_bytes())
        except (OSError, ArchiveError):
            return False
    return True


def _point_at(element: lxml.html.HtmlElement, original: str, local: str) -> None:
    if element.get("src") == original:
        element.set("src", local)
    srcset = element.get("srcset")
    if srcset:
        candidates = [c.split() for c in srcset.split(",") if c.split()]
        element.set("srcset", ", ".join(" ".join([local if c[0] == original else c[0], *c[1:]])
                                        for c in candidates))

