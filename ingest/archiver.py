"""The archiver: one entry to one post on disk, with its images.

An entry becomes an article (article.py), its images are archived beside the
post (images.py), what it was made from is kept (kept.py), the post is rendered
(render.py) and written atomically.
A post that would come out the same but for `lastmod` is left alone, so a page
still blocked or a field that is not shown never churns the archive.

What archiving needs (the article pages, the image store, the LLM, the static
front matter) is made once per run, when the first entry needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path, PurePosixPath

from ingest.archive import Stage
from ingest.article import build_article
from ingest.config import Config, FeedSettings
from ingest.extract import Pages
from ingest.fetch import HTTP
from ingest.images import Budget, ImageStore
from ingest.kept import Kept, PostRecord
from ingest.llm import LLMSummarizer
from ingest.models import Archived, Article, ImageOutcome, KnownPost, Outcome, Plan
from ingest.render import StaticKeys, render_post
from ingest.state import WorkerCache

# Added to a post's source hash while its page or some images could not be had: the
# entry then never looks unchanged, and later runs try again.
INCOMPLETE = "-incomplete"


class Archiver:
    def __init__(self, config: Config, state_path: Path, fetcher: HTTP,
                 clock: Callable[[], datetime], *, kept: Kept | None = None,
                 strict_pages: bool = False, dry_run: bool = False) -> None:
        self._config = config
        self._kept = kept
        self._dry_run = dry_run
        self._clock = clock
        self._static = StaticKeys(config.front_matter)
        self._pages = Pages(fetcher, clock, kr36_site=config.sources.kr36.site,
                            max_bytes=config.http.max_page_bytes, strict=strict_pages)
        self._cache = WorkerCache(state_path)
        self._images = ImageStore(fetcher, config.archive_dir, self._cache,
                                  max_bytes=config.http.max_image_bytes, dry_run=dry_run)
        self._llm = LLMSummarizer(fetcher, config.summary_llm, self._cache, clock) \
            if config.summary_llm else None

    def close(self) -> None:
        self._images.close()
        self._cache.close()

    @staticmethod
    def offline(job: Plan, settings: FeedSettings) -> bool:
        """Whether archiving `job` asks nothing of the network: its content read ahead, and
        no page, image or LLM summary to fetch for it."""
        return (job.content is not None and not job.content.wants_page
                and not settings.images and settings.summary != "llm")

    def archive(self, job: Plan, settings: FeedSettings, stage: Stage) -> Archived:
        """Stage the post of `job` (images are written first); what became of it (or would,
        on a dry run). The post is on disk once `stage` is committed."""
        article = build_article(job.entry, settings, job.known, job.date, self._pages, self._llm,
                                self._clock, job.content)
        images: list[ImageOutcome] = []
        if settings.images:
            budget = Budget(settings.image_max_width, webp=settings.image_format == "webp")
            article, images = self._with_images(article, PurePosixPath(job.path).parent.as_posix(), budget)
        if job.rebuild and job.known is not None:
            # Made again from the same sources: how it looks may change, what it records does not.
            article = replace(article, source_hash=job.known.source_hash, lastmod=job.known.lastmod)
        else:
            retry = article.partial is not None or any(i.retry_later for i in images)
            article = replace(article, source_hash=article.source_hash + (INCOMPLETE if retry else ""))
        target = self._config.archive_dir / job.path
        if job.known is not None and _same_post(target, render_post(
                replace(article, lastmod=job.known.lastmod), self._static)):
            # Nothing shown changed (a page still blocked, a field we do not render): no churn.
            post = replace(job.known, source_hash=article.source_hash)
            self._keep(job, article, post, stage, unless_recorded=True)
            return Archived(post, Outcome.UNCHANGED, article.partial, tuple(images), article.note)
        post = KnownPost(key=article.key, feed=settings.feed.name, path=job.path,
                         source_hash=article.source_hash, date=article.date, lastmod=article.lastmod)
        self._keep(job, article, post, stage)
        if not self._dry_run:
            stage.write(target, render_post(article, self._static).encode())
        outcome = Outcome.UPDATED if job.known else Outcome.NEW
        return Archived(post, outcome, article.partial, tuple(images), article.note)

    def _keep(self, job: Plan, article: Article, post: KnownPost, stage: Stage, *,
              unless_recorded: bool = False) -> None:
        """The post's sources and record: never a post that cannot be made again. A rebuild
        (or a dry run) keeps nothing: its sources are those kept."""
        if self._kept is None or job.origin is None or job.rebuild or self._dry_run:
            return
        if unless_recorded and self._kept.has_record(job.path):
            return
        entry = self._kept.keep(job.origin, stage)
        page = self._kept.keep(article.page, stage) if article.page else None
        self._kept.save(PostRecord(post, job.entry.link, entry, page), stage)

    def _with_images(self, article: Article, folder: str,
                     budget: Budget) -> tuple[Article, list[ImageOutcome]]:
        block, images = self._images.localize(article.block_html, folder, article.source_url, budget)
        cover = None
        if self._config.cover == "article" and article.cover_url:
            found = self._images.archive(article.cover_url, folder, article.source_url, budget)
            cover = found.file
            if found.url not in {i.url for i in images}:
                images.append(found)
        return replace(article, block_html=block, cover=cover), images


def _same_post(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        return False
