"""Full-text search over the archive (`ingest search`), kept current by every run.

The index is SQLite FTS5 in ``state_dir/search.sqlite3``, over text prepared
here rather than by a tokenizer: runs of Chinese, Japanese and Korean
characters are indexed as overlapping character bigrams (城市更新 → 城市 市更
更新), everything else as words. A query word of two or more CJK characters is
then the phrase of its bigrams, which matches exactly where the word occurs as
a substring: no dictionary to miss new names (jieba would need one), and
unlike SQLite's trigram tokenizer it matches two-character words, the most
common in Chinese. A single CJK character is looked up as a plain substring.
Latin words match case-insensitively and as prefixes (robot finds robotics).
A query word is the phrase of its pieces: GPT-4 is GPT followed by 4, A股 is A
followed by a run starting with 股.

Relevance is simple and predictable: posts whose title holds the query come
first, then newest first. A post's id is its date (seconds × 2²⁰, plus 20 bits
of its path's CRC-32): FTS5 hands the matches over newest first, in its own
order, and a query stops at its twentieth, however many posts match.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import secrets
import sqlite3
import sys
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TextIO

from ingest.errors import IngestError
from ingest.locations import SEARCH_INDEX, SEARCH_STALE, locations
from ingest.scripts import CJK as _CJK

_RUNS = re.compile(rf"([{_CJK}]+)|([^\W{_CJK}]+)")  # (a CJK run, or a word of letters and digits)
_CJK_CHAR = re.compile(rf"[{_CJK}]")
_QUERY = re.compile(r'"([^"]*)"|(\S+)')
# The index's `user_version` once built whole: any other (a new file, an index made before
# ids were dates, a build killed midway) is built again from the archive.
SCHEMA_VERSION = 2
_SCHEMA = (
    "DROP TABLE IF EXISTS terms",
    "DROP TABLE IF EXISTS posts",
    "CREATE TABLE posts (id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, date TEXT NOT NULL, "
    "feed TEXT NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL)",
    "CREATE VIRTUAL TABLE terms USING fts5(title, text, tokenize='unicode61 remove_diacritics 2')",
)
_SECOND = 2**20  # ids a second of dates holds: its posts are told apart by their path's CRC
_Test = tuple[str, tuple[object, ...]]  # an SQL condition on a post `p`, and its parameters
_Row = tuple[int, str, str, str, str, str]  # a post's id, path, date, title, feed and text
BUSY_SECONDS = 30.0  # how long a search waits for another ingest writing the index
ANNOUNCED_BUILD = 2000  # posts to index from which a search says it builds the index first (~3 s)
_SNIPPET = 40  # characters of context on each side of a match


class SearchError(IngestError):
    """A query that cannot be run (exit 2)."""


@dataclass(frozen=True, slots=True)
class Hit:
    path: str  # relative to archive_dir
    date: str  # YYYY-MM-DD, UTC
    title: str
    feed: str
    snippet: str  # the text around the first match


def terms(text: str) -> str:
    """`text` as the index stores it: CJK runs as bigrams, other words as they are."""
    out: list[str] = []
    for cjk, word in _RUNS.findall(text):
        out.append(" ".join(map(str.__add__, cjk, cjk[1:])) if len(cjk) > 1 else cjk or word)
    return " ".join(out)


@dataclass(frozen=True, slots=True)
class Query:
    match: str  # the FTS5 expression, empty when only substrings are asked for
    substrings: tuple[str, ...]  # single CJK characters
    needles: tuple[str, ...]  # what the snippet highlights


def parse_query(text: str) -> Query:
    """Words (all required), "quoted phrases"; raise SearchError if nothing is asked."""
    if text.count('"') % 2:
        raise SearchError(f"unbalanced quote in {text!r}: close the phrase with \"")
    clauses: list[str] = []
    substrings: list[str] = []
    needles: list[str] = []
    for phrase, word in _QUERY.findall(text):
        if phrase:
            tokens = terms(phrase)
            if tokens:
                clauses.append(f'"{tokens}"')
                needles.append(phrase.strip())
            continue
        tokens = terms(word)
        if not tokens:
            continue
        needles.append(word)
        if len(tokens) == 1 and _CJK_CHAR.match(tokens):
            substrings.append(tokens)
        else:
            # One word, one phrase: GPT-4 is GPT then 4, not GPT anywhere and 4 anywhere;
            # its last token a prefix (robot → robots; A股 → A 股市).
            clauses.append(f'"{tokens}"*')
    if not clauses and not substrings:
        raise SearchError(f"nothing to search for in {text!r}: give a word or a \"phrase\"")
    return Query(" AND ".join(clauses), tuple(substrings), tuple(needles))


class SearchIndex:
    """The index of one archive; built from the archive when it is missing, made by another
    version, or marked stale."""

    def __init__(self, state_dir: Path, archive_dir: Path, *,
                 on_build: Callable[[int], None] | None = None) -> None:
        """`on_build` hears how many posts the index is about to be built from."""
        self._archive = archive_dir
        self._on_build = on_build
        self._path = state_dir / SEARCH_INDEX
        self._stale = state_dir / SEARCH_STALE
        self.built = False  # from the whole archive, just now
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            # Writes open with BEGIN IMMEDIATE; `with self._db` commits them or rolls back.
            self._db = sqlite3.connect(self._path, timeout=BUSY_SECONDS, isolation_level="IMMEDIATE")
            self._db.execute("PRAGMA journal_mode=WAL")
            if not self._current():
                self._build()
        except sqlite3.Error as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: sqlite3.Error) -> IngestError:
        if exc.sqlite_errorname == "SQLITE_BUSY":  # deleting it would not help
            return IngestError(f"the search index {self._path} is being written by another ingest (a run, "
                               "or a search building it): try again when it is done")
        return IngestError(f"the search index {self._path} is unusable ({exc}): delete it, "
                           "the next search rebuilds it from the archive")

    def _current(self) -> bool:
        """Built whole by this version, and no post since left out of it."""
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        return version == SCHEMA_VERSION and not self._stale.exists()

    def _build(self) -> None:
        """The index of the whole archive, made in one transaction: a build killed midway
        leaves the index as it was, and two processes never build it at once."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if self._current():  # built by another process meanwhile
                return
            # Cleared after the build if no run has marked it again meanwhile (its posts
            # may have come after the list of files below).
            mark = _read(self._stale)
            files = sorted(self._archive.glob("*/*/*/*/index.md"))
            if self._on_build is not None:
                self._on_build(len(files))
            for statement in _SCHEMA:
                self._db.execute(statement)
            for file in files:
                self._index(file.relative_to(self._archive).as_posix())
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if mark is not None and _read(self._stale) == mark:
            self._stale.unlink(missing_ok=True)
        self.built = True

    def close(self) -> None:
        self._db.close()

    def update(self, paths: Iterable[str]) -> int:
        """(Re)index the posts at `paths` (relative to the archive); return how many."""
        try:
            with self._db:
                return sum(self._index(path) for path in paths)
        except sqlite3.Error as exc:
            raise self._failure(exc) from exc

    def _index(self, path: str) -> bool:
        document = _document(self._archive / path)
        if document is None:
            return False
        when, feed, title, text = document
        self._db.execute("DELETE FROM terms WHERE rowid = (SELECT id FROM posts WHERE path = ?)", (path,))
        self._db.execute("DELETE FROM posts WHERE path = ?", (path,))
        key = _key(when, path)
        # Two posts of one second with the same 20 bits of CRC (about one pair in a million):
        # the later one is filed just after, in the same second or the first id of the next.
        while self._db.execute("SELECT 1 FROM posts WHERE id = ?", (key,)).fetchone():
            key += 1
        self._db.execute("INSERT INTO posts (id, path, date, feed, title, text) VALUES (?, ?, ?, ?, ?, ?)",
                         (key, path, when, feed, title, text))
        self._db.execute("INSERT INTO terms (rowid, title, text) VALUES (?, ?, ?)",
                         (key, terms(title), terms(text)))
        return True

    def search(self, query: Query, *, limit: int = 20, feed: str | None = None,
               since: date | None = None) -> list[Hit]:
        """The newest posts matching `query`, those with a match in their title first."""
        where: list[_Test] = [("(instr(p.title, ?) OR instr(p.text, ?))", (needle, needle))
                              for needle in query.substrings]
        if feed:
            where.append(("p.feed = ?", (feed,)))
        if since:
            start = datetime(since.year, since.month, since.day, tzinfo=UTC)
            where.append(("{id} >= ?", (_key(start, ""),)))
        in_title = [("instr(p.title, ?)", (needle,)) for needle in query.substrings]
        rows = self._newest(f"{{title}} : ({query.match})" if query.match else "", [*where, *in_title], limit)
        if len(rows) < limit:  # every post with a match in its title is in `rows`: now the rest
            if rows:
                where.append((f"{{id}} NOT IN ({', '.join('?' * len(rows))})", tuple(row[0] for row in rows)))
            rows += self._newest(query.match, where, limit - len(rows))
        return [Hit(path, when[:10], title, name, snippet(text, query.needles))
                for _, path, when, title, name, text in rows]

    def _newest(self, match: str, where: list[_Test], limit: int) -> list[_Row]:
        """Up to `limit` posts matching `match` (an FTS5 expression; empty: every post) and
        the SQL tests of `where` (`{id}` in a test is the post's id), newest first: in the
        order of their ids, which is the order FTS5 hands its matches over in."""
        source, post_id = ("terms JOIN posts p ON p.id = terms.rowid", "terms.rowid") if match \
            else ("posts p", "p.id")
        tests: list[str] = ["terms MATCH ?"] if match else []
        params: list[object] = [match] if match else []
        for test, values in where:
            tests.append(test.format(id=post_id))
            params += values
        sql = (f"SELECT p.id, p.path, p.date, p.title, p.feed, p.text FROM {source} "
               f"WHERE {' AND '.join(tests) or '1'} ORDER BY {post_id} DESC LIMIT ?")
        try:
            return self._db.execute(sql, [*params, limit]).fetchall()
        except sqlite3.OperationalError as exc:
            raise SearchError(f"cannot search for this: {exc}") from None


def mark_stale(state_dir: Path) -> None:
    """Say that posts were written that the index may not hold (a run whose update of the
    index failed): the next search builds the index again."""
    (state_dir / SEARCH_STALE).write_text(f"{secrets.token_hex(8)}\n", encoding="ascii")


def _read(file: Path) -> str | None:
    try:
        return file.read_text(encoding="ascii")
    except FileNotFoundError:
        return None


def _key(when: str | datetime, path: str) -> int:
    """The id of the post at `path` dated `when`: ids sort as the posts' dates do."""
    moment = datetime.fromisoformat(when) if isinstance(when, str) else when
    return math.floor(moment.timestamp()) * _SECOND + (zlib.crc32(path.encode()) & (_SECOND - 1))


def _document(file: Path) -> tuple[str, str, str, str] | None:
    """(date, feed, title, article text) of a post, or None if it is not one of ours."""
    from ingest import archive, render, summary  # only indexing reads posts; a query needs none of it

    loaded = archive.load_post(file)
    if loaded is None:
        return None
    meta, body = loaded
    known = archive.known_post(meta, file.name)
    if known is None:
        return None
    from ingest.clean import tree_of, visible_text  # lxml: only for the posts being indexed

    # The post's article block (render.render_post), without the summary head: its
    # keywords would make phrases of words that never stand together in the article.
    outer, _ = render.split_body(body)
    _, article = summary.split_block(outer.removeprefix("<div>\n\n").removesuffix("\n</div>\n"))
    text = visible_text(tree_of(article)) if article.strip() else ""
    return known.date.astimezone(UTC).isoformat(), known.feed, str(meta.get("title", "")), text


def snippet(text: str, needles: Iterable[str], mark: tuple[str, str] = ("", "")) -> str:
    """The text around the first needle found, the needle between `mark`'s two strings."""
    lowered = text.lower()
    found = [(at, needle) for needle in needles if (at := lowered.find(needle.lower())) >= 0]
    if not found:
        return text[:2 * _SNIPPET]
    at, needle = min(found)
    start, end = max(0, at - _SNIPPET), at + len(needle)
    return ("…" if start else "") + text[start:at] + mark[0] + text[at:end] + mark[1] + \
        text[end:end + _SNIPPET] + ("…" if end + _SNIPPET < len(text) else "")


def search_command(args: argparse.Namespace, out: TextIO) -> int:
    """`ingest search`: exit 0 with results, 1 without (2, raised, on a bad query)."""
    query = parse_query(" ".join(args.query))
    archive_dir, state_dir = locations(args.config)
    index = SearchIndex(state_dir, archive_dir, on_build=_announce_build)
    try:
        hits = index.search(query, limit=args.limit, feed=args.feed, since=args.since)
    finally:
        index.close()
    print_hits(hits, query.needles, out, as_json=args.json)
    return 0 if hits else 1


def _announce_build(posts: int) -> None:
    if posts >= ANNOUNCED_BUILD:
        print(f"ingest: building the search index of {posts:,} posts, once (about a minute "
              "for 50,000)", file=sys.stderr, flush=True)


def print_hits(hits: list[Hit], needles: Iterable[str], out: TextIO, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps([asdict(h) for h in hits], ensure_ascii=False, indent=1), file=out)
        return
    terminal = out.isatty()
    for hit in hits:
        print(f"{hit.date}  {hit.path}  {hit.title}", file=out)
        if terminal:
            marked = snippet(hit.snippet, needles, ("\x1b[1;33m", "\x1b[0m"))
            print(f"    {marked}", file=out)
