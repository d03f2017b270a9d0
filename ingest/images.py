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

With a width budget (``image_max_width``), a wider image is stored scaled down
to it (Pillow, Lanczos), in its own format or as WebP (``image_format: webp``);
36kr's CDN is asked for that width (its ``x-oss-process`` resize) so that the
original never travels. Animations, and images Pillow cannot read, are kept as
they came. The file name stays that of the URL: a post's images do not move
when the budget changes, and images archived before keep their bytes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import lxml.html

from ingest import archive, sniff
from ingest.clean import parse_fragment, serialize
from ingest.errors import ArchiveError, IngestError, RefusedAddressError
from ingest.fetch import HTTP
from ingest.models import ImageOutcome
from ingest.state import WorkerCache
from ingest.workqueue import KeyedLocks

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
MAX_PER_ELEMENT = 4
_MAX_PIXELS = 40_000_000  # decoded, ~160 MB: a 1080 × 37,000 screenshot still fits
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


@dataclass(frozen=True, slots=True)
class Budget:
    """How an image is stored: at most `max_width` pixels wide, as WebP or as it came."""

    max_width: int | None = None
    webp: bool = False

    def request_url(self, url: str) -> str:
        """What to ask the server for: 36kr's CDN scales the image itself."""
        host = urlsplit(url).hostname or ""
        if self.max_width is None or not host.endswith(KR36_CDNS):
            return url
        resize = f"/resize,w_{self.max_width}"
        if _OSS.search(url):
            return _OSS.sub(lambda m: m.group(1) + resize + m.group(2), url, count=1)
        return f"{url}{'&' if '?' in url else '?'}x-oss-process=image{resize}"

    def fit(self, body: bytes, extension: str) -> tuple[bytes, str]:
        """`body` within the budget, and its extension: the bytes as they came when
        they are within it already, or when scaling would not make them smaller."""
        if self.max_width is None and not self.webp:
            return body, extension
        from PIL import Image, ImageOps  # only a run with a budget needs Pillow

        try:
            with Image.open(io.BytesIO(body)) as image:
                if getattr(image, "n_frames", 1) > 1 or image.width * image.height > _MAX_PIXELS:
                    return body, extension  # an animation, or too big to decode within memory
                # Upright, as shown: the copy is written without the EXIF orientation a camera left.
                source = ImageOps.exif_transpose(image.convert("RGBA") if image.mode in ("P", "1") else image)
                limit = self.max_width or source.width
                wide = source.width > limit
                if not wide and (not self.webp or extension == ".webp"):
                    return body, extension
                kind = "WEBP" if self.webp else (image.format or "")
                fitted = source.resize((limit, max(1, round(source.height * limit / source.width))),
                                       Image.Resampling.LANCZOS) if wide else source
                out = io.BytesIO()
                if kind == "JPEG":
                    fitted.convert("RGB").save(out, "JPEG", quality=85, optimize=True)
                elif kind == "PNG":
                    fitted.save(out, "PNG", optimize=True)
                elif kind == "WEBP":
                    fitted.save(out, "WEBP", quality=80, method=4)
                else:
                    return body, extension  # a format we keep as it came (GIF, AVIF)
        except Exception as exc:  # Pillow raises many kinds on a bad image: it is kept as it came
            log.info("image kept as it came: Pillow cannot fit it (%s)", exc)
            return body, extension
        data = out.getvalue()
        if len(data) >= len(body) and not wide:
            return body, extension
        return data, ".webp" if kind == "WEBP" else ".jpg" if kind == "JPEG" else ".png"


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

    def __init__(self, fetcher: HTTP, archive_dir: Path, cache: WorkerCache, *,
                 max_bytes: int, workers: int = 4, dry_run: bool = False) -> None:
        self._fetcher = fetcher
        self._dry_run = dry_run  # say what a post's images would be, write none
        self._archive = archive_dir
        self._cache = cache
        self._max_bytes = max_bytes
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="ingest-images")
        self._lock = threading.Lock()
        self._urls = KeyedLocks(lambda url: threading.Lock())  # an image URL, one thread at a time
        self._archived: dict[str, tuple[str, str]] = {}  # URL → (file, folder), this run
        self._failed: dict[str, ImageOutcome] = {}  # URL → its failure, this run

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def localize(self, html: str, folder: str, article_url: str | None,
                 budget: Budget = Budget()) -> tuple[str, list[ImageOutcome]]:
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
        outcomes = list(self._pool.map(lambda u: self.archive(u, folder, article_url, budget), wanted))
        local = {o.url: o.file for o in outcomes if o.file}
        for url, uses in wanted.items():
            if url in local:
                for element, original in uses:
                    _point_at(element, original, local[url])
        return serialize(root), outcomes

    def archive(self, url: str, folder: str, article_url: str | None,
                budget: Budget = Budget()) -> ImageOutcome:
        """One image into `folder`: found there, copied from another post, or downloaded."""
        url = download_url(url)
        with self._urls(url):  # two posts wanting one new image: the second waits and copies
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
            if known is not None:
                source = self._archive / known[1] / known[0]
                if source.is_file() if self._dry_run else _copy(source, target / known[0]):
                    return self._remember(url, known[0], folder)
            return self._download(url, folder, stem, article_url, budget)

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

    def _download(self, url: str, folder: str, stem: str, article_url: str | None,
                  budget: Budget) -> ImageOutcome:
        try:
            response = self._fetcher.get(budget.request_url(url), max_bytes=self._max_bytes, headers={
                "Accept": IMAGE_ACCEPT, "Referer": referer_for(url, article_url)})
            extension = sniff.image_type(response.body)
            if extension is None:
                kind = "an SVG (refused: it can carry scripts)" if sniff.is_svg(response.body) else \
                    f"not an image ({response.content_type or 'no type'}, {len(response.body)} bytes)"
                raise IngestError(f"{kind} ({url})")
            body, extension = budget.fit(response.body, extension)
            archive.write_atomic(self._archive / folder / f"{stem}{extension}", body)
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

