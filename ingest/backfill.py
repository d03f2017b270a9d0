"""`ingest backfill`: archive what feeds no longer show, resumably and politely.

Three sources, each turned into entries that go through the same pipeline as
`ingest run` (so dedupe, dates, cleaning, images and crash safety are the same):

* ``36kr --channel NICK``: 36kr's channel flow, newest first, 30 items a page:
  POST ``{gateway}/api/mis/nav/ifm/subNav/flow``; later pages send the previous
  answer's ``pageCallback``. Ads (``itemType`` 0) are skipped; paging stops at
  the first item older than ``--since`` or when ``hasNextPage`` is 0. Each
  article comes from its page (``{site}/p/<id>``), filed under its own
  ``publishTime``. After each page, the cursor and counts are committed to the
  state: the same command after a kill or Ctrl-C carries on from there, and
  once complete it starts again from the top, fetching only what is new.
* ``urls FILE``: article URLs, one a line; each page is read first, so a post
  has the page's title and publish date.
* ``feed PATH_OR_URL``: every item of a saved feed (a snapshot, a web-archive copy).

A backfill only adds: an article archived before (by a poll or a backfill, in
any URL form) is skipped without a request. One request at a time to 36kr,
spaced by ``sources.36kr.delay``; a bot wall stops the backfill (exit 1) rather
than knocking again: run the same command later to resume.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from ingest import sniff
from ingest.config import Feed, FeedSettings, FullContent
from ingest.errors import BlockedError, FetchError, IngestError, ParseError
from ingest.extract import Pages
from ingest.models import (
    Document,
    Entry,
    FeedResult,
    FeedStatus,
    Outcome,
    PageArticle,
    RunReport,
    fingerprint,
)
from ingest.parse import entry_key, parse_feed
from ingest.pipeline import Run
from ingest.progress import Progress, Tally
from ingest.report import plural, to_json
from ingest.sources import kr36

FLOW_PATH = "/api/mis/nav/ifm/subNav/flow"
PAGE_SIZE = 30
MAX_FLOW_BYTES = 5 * 1024 * 1024
URL_BATCH = 10


@dataclass(frozen=True, slots=True)
class FlowPage:
    entries: tuple[Entry, ...]  # the articles of the page, ads left out, newest first
    cursor: str
    has_next: bool


def flow_payload(channel: str, cursor: str, now: datetime) -> dict[str, Any]:
    return {"partner_id": "web", "timestamp": int(now.timestamp() * 1000),
            "param": {"subnavType": 1, "subnavNick": channel, "pageSize": PAGE_SIZE,
                      "pageEvent": 1 if cursor else 0, "pageCallback": cursor, "siteId": 1,
                      "platformId": 2}}


def parse_flow(body: bytes, url: str) -> FlowPage:
    """One page of the channel flow; ParseError if the answer is not one."""
    marker = sniff.challenge_marker(body)
    if marker:
        raise BlockedError(url, f"36kr answered the channel flow with a bot wall ({marker!r})",
                           wall=f"a bot wall ({marker!r})")
    try:
        answer = json.loads(body)
        data = answer["data"]
        items = data["itemList"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ParseError(f"the channel flow answered no item list ({url}): {exc}") from None
    if answer.get("code") not in (0, None):
        raise ParseError(f"the channel flow answered code {answer.get('code')} ({url})")
    entries = tuple(e for e in (_flow_entry(item) for item in items) if e is not None)
    return FlowPage(entries, str(data.get("pageCallback") or ""), bool(data.get("hasNextPage")))


def _flow_entry(item: dict[str, Any]) -> Entry | None:
    material = item.get("templateMaterial") or {}
    article = str(material.get("itemId") or item.get("itemId") or "")
    published = material.get("publishTime")
    if item.get("itemType") == 0 or not article.isdigit() or not isinstance(published, int | float):
        return None  # an ad, or not an article
    link = kr36.canonical_url(article)
    title = " ".join(str(material.get("widgetTitle") or "").split()) or link
    summary = str(material.get("summary") or "")
    moment = datetime.fromtimestamp(published / 1000, UTC)
    return Entry(key=f"36kr:{article}", title=title, link=link, published=moment, updated=None,
                 content=f"<p>{_escape(summary)}</p>" if summary else "",
                 author=str(material.get("authorName") or "") or None,
                 source_hash=fingerprint(title, link, moment, summary))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Backfill:
    """One `ingest backfill` command."""

    def __init__(self, run: Run, progress: Progress, out: TextIO, *, category: str,
                 dry_run: bool = False) -> None:
        """`run` archives what is found: a run for new entries only, that stops at a bot wall
        (`Run(..., only_new=True, strict_pages=True)`)."""
        self.run = run
        self.config, self.state, self.fetcher, self.clock = run.config, run.state, run.fetcher, run.clock
        self.progress = progress
        self.out = out
        self.category = category
        self.dry_run = dry_run
        self.tally = Tally()
        self.source = category
        self.stopped: str | None = None
        self._started = run.clock()
        self._results: list[FeedResult] = []

    def channel(self, channel: str, since: date, until: date | None) -> int:
        start = datetime.combine(since, datetime.min.time(), UTC)
        end = datetime.combine(until, datetime.min.time(), UTC) + timedelta(days=1) if until else None
        checkpoint = f"36kr/{channel}/{since}/{until or ''}"
        self.source = f"36kr channel {channel} since {since}" + (f" until {until}" if until else "")
        saved = None if self.dry_run else self.state.checkpoint(checkpoint)
        cursor = ""
        if saved and not saved["done"]:
            cursor = saved["cursor"]
            self.tally = Tally(saved["pages"], saved["archived"], saved["skipped"], saved["failed"],
                               datetime.fromisoformat(saved["reached"]) if saved["reached"] else None)
            self._say(f"resuming after page {self.tally.pages}")
        gateway = self.config.sources.kr36.gateway.rstrip("/") + FLOW_PATH
        settings = self._settings(gateway, full_content="always")
        with self.run as run:
            while True:
                try:
                    response = self.fetcher.post_json(gateway, flow_payload(channel, cursor, self.clock()),
                                                      max_bytes=MAX_FLOW_BYTES)
                    page = parse_flow(response.body, gateway)
                    origin = Document("36kr-flow", gateway, response.url, response.content_type,
                                      response.body, self.clock())
                except BlockedError as exc:
                    return self._stopped(str(exc))
                wanted = [e for e in page.entries
                          if e.published and e.published >= start and (end is None or e.published < end)]
                older = any(e.published and e.published < start for e in page.entries)
                self.tally.pages += 1
                if page.entries:
                    oldest = min(e.published for e in page.entries if e.published)
                    self.tally.reached = min(self.tally.reached or oldest, oldest)
                if not self._archive(run, settings, wanted, {e.key: origin for e in wanted}):
                    return self._stopped(run.blocked or "blocked")
                done = older or not page.has_next or not page.cursor
                if not self.dry_run:
                    self.state.save_checkpoint(checkpoint, page.cursor, self.tally, done, self.clock())
                self.progress.update(self.tally)
                if done:
                    break
                cursor = page.cursor
        return self._finished()

    def urls(self, lines: list[str]) -> int:
        links = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        self.source = f"{len(links)} URLs"
        pages = Pages(self.fetcher, self.clock, kr36_site=self.config.sources.kr36.site,
                      max_bytes=self.config.http.max_page_bytes)
        settings = self._settings("backfill:urls", full_content="never")
        with self.run as run:
            for start in range(0, len(links), URL_BATCH):
                batch = links[start:start + URL_BATCH]
                known = self.state.known(entry_key("", link, "", None) for link in batch)
                entries = []
                origins: dict[str, Document] = {}
                for link in batch:
                    key = entry_key("", link, "", None)
                    if key in known:
                        self.tally.skipped += 1
                        continue
                    if self.dry_run:
                        self._say(f"would archive {link}")
                        continue
                    try:
                        page = pages.article(link)
                        entries.append(page_entry(key, link, page))
                        if page.document:
                            origins[key] = page.document
                    except BlockedError as exc:
                        return self._stopped(str(exc))
                    except (FetchError, IngestError) as exc:
                        self.tally.failed += 1
                        self._say(f"! {link}: {exc}")
                if entries and not self._archive(run, settings, entries, origins):
                    return self._stopped(run.blocked or "blocked")
                self.tally.pages += 1
                self.progress.update(self.tally)
        return self._finished()

    def feed(self, source: str) -> int:
        self.source = source
        path = Path(source)
        try:
            if path.is_file():
                body, url, content_type = path.read_bytes(), path.resolve().as_uri(), ""
            else:
                response = self.fetcher.get(source, max_bytes=self.config.http.max_feed_bytes)
                body, url, content_type = response.body, response.url, response.content_type
            parsed = parse_feed(body, url, content_type)
        except (OSError, IngestError) as exc:
            print(f"ingest: cannot read the feed {source}: {exc}", file=sys.stderr)
            return 1
        settings = self._settings(f"backfill:{url}", full_content=self.config.full_content)
        self._say(f"{plural(len(parsed.entries), 'item')} in {source}")
        with self.run as run:
            origin = Document("feed", source, url, content_type, body, self.clock())
            if not self._archive(run, settings, list(parsed.entries),
                                 {e.key: origin for e in parsed.entries}):
                return self._stopped(run.blocked or "blocked")
        self.tally.pages = 1
        self.progress.update(self.tally)
        return self._finished()

    def _settings(self, url: str, *, full_content: FullContent) -> FeedSettings:
        feed = Feed.model_construct(name=self.category, url=url)
        return FeedSettings.model_construct(feed=feed, full_content=full_content,
                                            images=self.config.images, summary=self.config.summary,
                                            image_max_width=self.config.image_max_width,
                                            image_format=self.config.image_format)

    def _archive(self, run: Run, settings: FeedSettings, entries: list[Entry],
                 origins: dict[str, Document]) -> bool:
        """Archive `entries`, read from `origins` by key (or list them, on a dry run); False if
        a bot wall stopped us."""
        if self.dry_run:
            known = self.state.known(e.key for e in entries)
            for entry in entries:
                day = f"{entry.published:%Y-%m-%d}" if entry.published else "undated"
                status = "archived already" if entry.key in known else "new"
                self._say(f"{day}  {entry.key}  {entry.title}  ({status})")
                self.tally.skipped += entry.key in known
            return True
        result = run.archive_entries(settings, entries, origins)
        self.tally.add(result)
        self._results.append(result)
        for outcome in result.entries:
            if outcome.outcome is Outcome.FAILED:
                self._say(f"! {outcome.title}: {outcome.error}")
        return run.blocked is None

    def written(self) -> list[str]:
        return [path for result in self._results for path in result.written()]

    def report(self, exit_code: int) -> dict[str, Any]:
        """The run report (ingest.report) of this backfill, as one feed: its source."""
        entries = tuple(e for r in self._results for e in r.entries)
        status = FeedStatus.ERROR if self.stopped else FeedStatus.OK
        merged = FeedResult(name=self.category, url=self.source, status=status, entries=entries,
                            error=self.stopped)
        t = self.tally
        return to_json(RunReport(self._started, self.clock(), (merged,)), "backfill", exit_code=exit_code,
                       extra={"backfill": {"source": self.source, "pages": t.pages, "archived": t.archived,
                                           "skipped": t.skipped, "failed": t.failed,
                                           "stopped": self.stopped}})

    def _stopped(self, why: str) -> int:
        self.stopped = why
        self.progress.close()
        self._say(f"stopped: {why}")
        self._say(f"{self._summary()}; run the same command later to resume")
        return 1

    def _finished(self) -> int:
        self.progress.close()
        self._say(self._summary())
        return 1 if self.tally.failed else 0

    def _summary(self) -> str:
        t = self.tally
        verb = "would archive" if self.dry_run else "archived"
        return (f"backfill {'(dry run) ' if self.dry_run else ''}{plural(t.pages, 'page')}: "
                f"{t.archived} {verb}, {t.skipped} already archived, {t.failed} failed")

    def _say(self, line: str) -> None:
        print(line, file=self.out)


def page_entry(key: str, link: str, page: PageArticle) -> Entry:
    """The entry of an article known by its page alone (`backfill urls`, and its rebuild)."""
    return Entry(key=key, title=page.title or link, link=link, published=page.published, updated=None,
                 content=page.html, author=page.author,
                 source_hash=fingerprint(page.title, link, page.published, page.html))
