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
first, then newest first.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date
from pathlib import Path
from typing import TextIO

from ingest.errors import IngestError
from ingest.locations import SEARCH_INDEX, locations
from ingest.scripts import CJK as _CJK

_RUNS = re.compile(rf"([{_CJK}]+)|([^\W{_CJK}]+)")  # (a CJK run, or a word of letters and digits)
_CJK_CHAR = re.compile(rf"[{_CJK}]")
_QUERY = re.compile(r'"([^"]*)"|(\S+)')
_SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (
    id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, date TEXT NOT NULL, feed TEXT NOT NULL,
    title TEXT NOT NULL, text TEXT NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS terms USING fts5(title, text, tokenize='unicode61 remove_diacritics 2');
CREATE INDEX IF NOT EXISTS posts_newest ON posts(date DESC, path);
"""
# A query matching many posts walks the posts newest first (posts_newest) and stops at the
# limit; one matching a few reads those few. Many: more than this, counted up to it.
_MANY = 2000
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
    """The index of one archive; built from the archive when it is missing."""

    def __init__(self, state_dir: Path, archive_dir: Path) -> None:
        self._archive = archive_dir
        path = state_dir / SEARCH_INDEX
        fresh = not path.exists()
        self.built = fresh  # from the whole archive, just now
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            # Writes open with BEGIN IMMEDIATE; `with self._db` commits them or rolls back.
            self._db = sqlite3.connect(path, timeout=30, isolation_level="IMMEDIATE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise IngestError(f"the search index {path} is unusable ({exc}): delete it, "
                              "the next search rebuilds it from the archive") from exc
        if fresh:
            self.update(p.relative_to(archive_dir).as_posix()
                        for p in sorted(archive_dir.glob("*/*/*/*/index.md")))

    def close(self) -> None:
        self._db.close()

    def update(self, paths: Iterable[str]) -> int:
        """(Re)index the posts at `paths` (relative to the archive); return how many."""
        count = 0
        with self._db:
            for path in paths:
                document = _document(self._archive / path)
                if document is None:
                    continue
                when, feed, title, text = document
                row = self._db.execute("SELECT id FROM posts WHERE path = ?", (path,)).fetchone()
                if row:
                    self._db.execute("DELETE FROM terms WHERE rowid = ?", row)
                    self._db.execute("DELETE FROM posts WHERE id = ?", row)
                cursor = self._db.execute(
                    "INSERT INTO posts (path, date, feed, title, text) VALUES (?, ?, ?, ?, ?)",
                    (path, when, feed, title, text))
                self._db.execute("INSERT INTO terms (rowid, title, text) VALUES (?, ?, ?)",
                                 (cursor.lastrowid, terms(title), terms(text)))
                count += 1
        return count

    def search(self, query: Query, *, limit: int = 20, feed: str | None = None,
               since: date | None = None) -> list[Hit]:
        """The newest posts matching `query`, those with a match in their title first."""
        where, params = [], []
        if query.match:
            where.append("p.id IN (SELECT rowid FROM terms WHERE terms MATCH ?)")
            params.append(query.match)
        for needle in query.substrings:
            where.append("(instr(p.title, ?) OR instr(p.text, ?))")
            params += [needle, needle]
        if feed:
            where.append("p.feed = ?")
            params.append(feed)
        if since:
            where.append("p.date >= ?")
            params.append(since.isoformat())
        in_title = " AND ".join(
            (["p.id IN (SELECT rowid FROM terms WHERE terms MATCH '{title} : ' || ?)"]
             if query.match else []) + ["instr(p.title, ?)" for _ in query.substrings])
        title_params = ([f"({query.match})"] if query.match else []) + list(query.substrings)
        # SQLite would look every match up by its id, then sort them all: for a word in
        # 100,000 posts of 3 KB, 0.4 s reading rows that are not shown. (Substrings are
        # read in every post anyway: the walk stops sooner.)
        posts = "posts p INDEXED BY posts_newest" if self._many(query) else "posts p"
        rows: list[tuple[str, str, str, str, str]] = []
        for title_test in (in_title, f"NOT ({in_title})"):  # titles first, then the rest
            sql = (f"SELECT p.path, p.date, p.title, p.feed, p.text FROM {posts} "
                   f"WHERE {' AND '.join([*where, title_test])} ORDER BY p.date DESC, p.path LIMIT ?")
            try:
                rows += self._db.execute(sql, [*params, *title_params, limit - len(rows)]).fetchall()
            except sqlite3.OperationalError as exc:
                raise SearchError(f"cannot search for this: {exc}") from None
            if len(rows) >= limit:
                break
        return [Hit(path, when[:10], title, name, snippet(text, query.needles))
                for path, when, title, name, text in rows]

    def _many(self, query: Query) -> bool:
        if not query.match:
            return True
        try:
            found = self._db.execute("SELECT count(*) FROM (SELECT rowid FROM terms WHERE terms MATCH ? "
                                     "LIMIT ?)", (query.match, _MANY + 1)).fetchone()[0]
        except sqlite3.OperationalError as exc:
            raise SearchError(f"cannot search for this: {exc}") from None
        return bool(found > _MANY)


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
    index = SearchIndex(state_dir, archive_dir)
    try:
        hits = index.search(query, limit=args.limit, feed=args.feed, since=args.since)
    finally:
        index.close()
    print_hits(hits, query.needles, out, as_json=args.json)
    return 0 if hits else 1


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
