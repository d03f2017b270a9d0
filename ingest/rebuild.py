"""`ingest rebuild`: posts made again from their kept sources, without the network.

A post's record (ingest.kept) names the document its entry was read from and
the article page read for it. The entry is read again from that document with
today's parser, the page is served from what was kept, and the post goes
through the archiver a run uses, with today's settings: cleaner, summary mode,
front matter, image width. Nothing is fetched: a page that was not kept is not
there (the feed's content is used, as it was when the run could not get the
page), images are those already beside the post, and an LLM summary comes
from the state's cache, else it is the extractive one.

What a rebuild never moves: the post's path, its `date`, its `lastmod` and
its source hash. `lastmod` says when the article last changed at its source,
as runs saw it; showing the same article another way is not a change of it.
So with unchanged settings every post comes back byte for byte, and a setting
changed and then changed back gives back the same bytes.

A post without a record, or whose kept sources are missing or corrupt, is
reported and left as it is, never deleted.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

from ingest import archive
from ingest.archiver import Archiver
from ingest.config import Config, Feed, FeedSettings
from ingest.errors import ArchiveError, FetchError, IngestError, SourceError, StateError
from ingest.extract import Pages
from ingest.kept import Kept, PostRecord, Ref
from ingest.models import Entry, KnownPost, Outcome, Plan, Response, Validators
from ingest.report import plural
from ingest.state import State

log = logging.getLogger(__name__)

# Feed documents parsed and held at once: records come in date order, so a feed's
# posts, made from the same few documents, come together.
PARSED = 8
# Posts named, and recorded in the state, at a time (see archive.Stage).
BATCH = 100
# Posts listed of each kind of problem, unless -v.
LISTED = 20
# How backfill chose its content, by where its entries came from (ingest.backfill).
FULL_CONTENT_BY_KIND = {"36kr-flow": "always", "page": "never"}


class Replay:
    """HTTP for a rebuild: the kept pages answer, nothing else does."""

    def __init__(self, kept: Kept, pages: Mapping[str, Ref]) -> None:
        self._kept = kept
        self._pages = pages

    def get(self, url: str, *, max_bytes: int, validators: Validators | None = None,
            headers: Mapping[str, str] | None = None) -> Response:
        ref = self._pages.get(url)
        if ref is None:
            raise FetchError(url, "not kept, and a rebuild fetches nothing")
        return Response(ref.url, 200, ref.content_type, self._kept.read(ref))

    def post_json(self, url: str, payload: object, *, max_bytes: int,
                  headers: Mapping[str, str] | None = None) -> Response:
        raise FetchError(url, "a rebuild fetches nothing")


@dataclass
class Tally:
    rewritten: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # the post was missing
    unchanged: int = 0
    without: list[tuple[str, str]] = field(default_factory=list)  # (post, why) left as they are
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def written(self) -> list[str]:
        return self.rewritten + self.restored


class Rebuild:
    def __init__(self, config: Config, state: State, kept: Kept, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.state = state
        self.kept = kept
        self.clock = clock
        self._parsed: OrderedDict[str, tuple[Entry, ...]] = OrderedDict()

    def select(self, paths: Iterable[Path]) -> list[str]:
        """The posts under `paths` (all when none).

        Posts come from the records and from the archive, so that a post whose
        index.md is gone is restored, and one without a record is reported.
        """
        everything = set(self.kept.posts()) | {
            p.relative_to(self.config.archive_dir).as_posix()
            for p in self.config.archive_dir.glob("*/*/*/*/index.md")}
        roots = [_inside(self.config.archive_dir, p) for p in paths]
        return sorted(p for p in everything
                      if not roots or any((self.config.archive_dir / p).is_relative_to(r) for r in roots))

    def run(self, posts: list[str], *, feed: str | None = None, dry_run: bool = False,
            verbose: bool = False, out: TextIO) -> Tally:
        """Rebuild `posts` (those of `feed` only, if given); what became of them."""
        tally = Tally()
        records: dict[str, PostRecord] = {}
        for path in posts:
            try:
                record = self.kept.load(path)
            except SourceError as exc:
                known = archive.read_post(self.config.archive_dir / path, path) if feed else None
                if feed is None or (known is not None and known.feed == feed):
                    tally.without.append((path, str(exc)))
                continue
            if feed is None or record.post.feed == feed:
                records[path] = record
        pages = {ref.asked: ref for r in records.values() for ref in (r.page, r.entry)
                 if ref is not None and ref.kind == "page"}
        archiver = Archiver(self.config, self.state.path, Replay(self.kept, pages), self.clock,
                            dry_run=dry_run)
        stage, written = archive.Stage(), []
        try:
            for record in records.values():
                done = self._one(archiver, record, stage, dry_run, tally)
                if done is not None:
                    written.append(done)
                if len(written) >= BATCH:
                    self._commit(stage, written)
            self._commit(stage, written)
        finally:
            stage.discard()
            archiver.close()
        for mark, problems in (("-", tally.without), ("!", tally.failed)):
            shown = problems if verbose else problems[:LISTED]
            for path, why in shown:
                print(f"{mark} {path}: {why}; left as it is", file=out)
            if len(problems) > len(shown):  # an archive older than its sources: thousands
                print(f"{mark} … and {len(problems) - len(shown)} more like these (-v lists them all)",
                      file=out)
        return tally

    def _commit(self, stage: archive.Stage, written: list[KnownPost]) -> None:
        """Name the posts written so far, then let the state know of them."""
        stage.commit()
        with self.state.transaction():
            for post in written:
                self.state.record_post(post)
        written.clear()

    def _one(self, archiver: Archiver, record: PostRecord, stage: archive.Stage, dry_run: bool,
             tally: Tally) -> KnownPost | None:
        """The post as rebuilt, when it was written."""
        post = record.post
        target = self.config.archive_dir / post.path
        existed = target.is_file()
        archive.clear_temps(target.parent)  # a killed rebuild's: it keeps no journal
        try:
            entry = self._entry(record)
            plan = Plan(entry, post, post.date, post.path, rebuild=True)
            done = archiver.archive(plan, self._settings(record), stage)
        except SourceError as exc:
            tally.without.append((post.path, str(exc)))
            return None
        except (ArchiveError, StateError):
            raise
        except IngestError as exc:
            tally.failed.append((post.path, str(exc)))
            return None
        except Exception as exc:  # one post's bug must not end the rebuild of the others
            log.exception("unexpected failure rebuilding %s", post.path)
            tally.failed.append((post.path, f"internal error: {exc!r}"))
            return None
        if done.outcome is Outcome.UNCHANGED:
            tally.unchanged += 1
            return None
        (tally.rewritten if existed else tally.restored).append(post.path)
        return None if dry_run else done.post

    def _entry(self, record: PostRecord) -> Entry:
        """The entry as its kept document gives it today."""
        ref = record.entry
        if ref.kind == "page":
            from ingest.backfill import page_entry

            pages = Pages(Replay(self.kept, {ref.asked: ref}), self.clock,
                          kr36_site=self.config.sources.kr36.site, max_bytes=ref.size)
            link = record.link or ref.asked
            return page_entry(record.post.key, link, pages.article(link))
        entries = self._parsed.get(ref.sha256)
        if entries is None:
            entries = self._parse(ref)
            self._parsed[ref.sha256] = entries
            if len(self._parsed) > PARSED:
                self._parsed.popitem(last=False)
        self._parsed.move_to_end(ref.sha256)
        found = next((e for e in entries if e.key == record.post.key), None)
        if found is None:
            raise SourceError(f"its entry {record.post.key} is not in its kept {ref.kind} ({ref.url})")
        return found

    def _parse(self, ref: Ref) -> tuple[Entry, ...]:
        body = self.kept.read(ref)
        if ref.kind == "36kr-flow":
            from ingest.backfill import parse_flow

            return parse_flow(body, ref.url).entries
        from ingest.parse import parse_feed

        return parse_feed(body, ref.url, ref.content_type).entries

    def _settings(self, record: PostRecord) -> FeedSettings:
        """Today's settings of the post's feed (the top-level ones for a backfill's category)."""
        name = record.post.feed
        feed = next((f for f in self.config.feeds if f.name == name), None)
        settings = self.config.for_feed(feed or Feed.model_construct(name=name, url=record.entry.asked))
        by_kind = FULL_CONTENT_BY_KIND.get(record.entry.kind)
        return settings.model_copy(update={"full_content": by_kind}) if by_kind else settings


def summary(tally: Tally, *, dry_run: bool) -> str:
    would = "would be " if dry_run else ""
    parts = [f"{len(tally.rewritten)} {would}rewritten", f"{len(tally.restored)} {would}restored",
             f"{tally.unchanged} unchanged"]
    if tally.without:
        parts.append(f"{len(tally.without)} without sources")
    if tally.failed:
        parts.append(f"{len(tally.failed)} failed")
    total = len(tally.written) + tally.unchanged + len(tally.without) + len(tally.failed)
    return f"{plural(total, 'post')}{' (dry run)' if dry_run else ''}: {', '.join(parts)}"


def _inside(archive_dir: Path, path: Path) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(archive_dir):
        raise IngestError(f"{path}: not inside archive_dir ({archive_dir}); name posts or folders "
                          "of the archive")
    return resolved
