"""Article pages → the article: 36kr's page state, or any site's main content.

36kr article links are fetched from ``{sources.36kr.site}/p/<id>`` and read by
`sources.kr36`. Any other page goes through `extract_generic`: readability-lxml
only *locates* the article, and the smallest element of the page that holds
what it found is kept whole, minus navigation, forms, asides and footers, and
minus what surrounds the story in it (`_prune`); the cleaner then drops share
bars, related lists and ads. What the page hides from its readers goes first.
Measured in README ("Full articles"): on real pages (python -m bench.realpages)
precision 0.961 and recall 0.993, where readability's own output has 0.926 /
0.992 and trafilatura's 0.884 / 0.995, in about trafilatura's time; on pages
built from the corpus (python -m bench.extractors) it keeps the most of an
article's images, headings, lists, tables, code and links.

A page that is a bot wall, or that holds no article, blocks its host for the
rest of the run: no more of its pages are asked for until the next run.
"""

from __future__ import annotations

import copy
import functools
import html as htmllib
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

import lxml.html
from lxml import etree

from ingest import sniff
from ingest.clean import embeds, name_words, new_div, parse_document, resolve_lazy_images, visible_text
from ingest.errors import BlockedError, ExtractError
from ingest.fetch import HTTP
from ingest.models import Document, PageArticle
from ingest.scripts import HAN, marks
from ingest.sources import kr36
from ingest.workqueue import KeyedLocks

PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
_CONTAINERS = ("div", "article", "section", "main", "td", "body")
_CODE = ("script", "style")
_CHROME = ("nav", "footer", "aside", "form")
_WORD = re.compile(rf"[{HAN}]|[^\W_](?:[^\W_]|[{marks()}])*")
_TAG = re.compile(r"<(?:[^>\"']|\"[^\"]*\"|'[^']*')*>")
_COVERAGE = 0.95  # the article's container must hold this share of what readability found


class Pages:
    """Fetches article pages, politely, and reads the article out of them.

    `strict`: a page behind a bot wall fails its entry, which is then not archived from
    the feed's content meanwhile (backfill's `--strict-pages`).
    """

    def __init__(self, fetcher: HTTP, clock: Callable[[], datetime], *, kr36_site: str,
                 max_bytes: int, strict: bool = False) -> None:
        self.strict = strict
        self._fetcher = fetcher
        self._clock = clock
        self._kr36_site = kr36_site
        self._max_bytes = max_bytes
        self._hosts = KeyedLocks(lambda host: threading.Lock())  # a host's pages, one at a time
        self._blocked: dict[str, str] = {}  # host → the wall it answered with, this run

    def article(self, link: str) -> PageArticle:
        article_id = kr36.article_id(link)
        url = kr36.page_url(article_id, self._kr36_site) if article_id else link
        host = urlsplit(url).hostname or ""
        # A host's pages are read one at a time, from the look at its walls to the
        # record of a new one: a page queued behind one that meets a wall, or a page
        # without the article, must see that wall and never be sent.
        with self._hosts(host):
            wall = self._blocked.get(host)
            if wall:
                raise BlockedError(url, f"{host} answered with {wall} earlier in this run; its pages "
                                        "are left alone until the next run")
            try:
                response = self._fetcher.get(url, max_bytes=self._max_bytes,
                                             headers={"Accept": PAGE_ACCEPT})
                document = Document("page", url, response.url, response.content_type, response.body,
                                    self._clock())
                html = sniff.decode_html(response.body, response.content_type)
                if article_id:
                    return replace(kr36.extract_page(html, response.url), document=document)
            except BlockedError as exc:
                self._blocked.setdefault(host, exc.wall)
                raise
            except kr36.NoArticle as exc:
                # 36kr only ever serves an article here: anything else is a wall in disguise.
                self._blocked.setdefault(host, f"a page without the article ({exc})")
                raise BlockedError(url, f"36kr answered a page without the article ({exc}); "
                                        "not archived from the page, tried again next run") from None
        # Outside the lock: other pages may be fetched meanwhile.
        return replace(extract_generic(html, response.url), document=document)


def extract_generic(html: str, url: str) -> PageArticle:
    """The main content of any article page, kept whole; ExtractError if there is none."""
    if not html.strip():
        raise ExtractError(f"empty page ({url})")
    root = parse_document(html)
    etree.strip_elements(root, *_CODE, with_tail=False)
    # What the page hides goes, but for prose: a script shows the rest of an article (or
    # the whole of one) when asked, and what it would show stays.
    for element in [e for e in _maybe_hidden(root) if _hidden(e) and not _holds_prose(e)]:
        element.drop_tree()
    resolve_lazy_images(root)
    located = _text(_readability()(root).summary(html_partial=True))
    container = _container_of(root, count_words(located))
    if container is None:
        container = _densest(root)
    if container is None:
        raise ExtractError(f"no article found on the page ({url})")
    for element in list(container.iter(*_CHROME)):
        if element is not container:
            element.drop_tree()
    _prune(container, _shingles(located))
    # The article as a <div> holding it, the shape the cleaner takes: cleaned as it is,
    # never serialized and parsed again.
    article = new_div()
    article.text = container.text
    article.extend(list(container))
    inner = (article.text or "") + "".join(lxml.html.tostring(c, encoding="unicode") for c in article)
    return PageArticle(url=url, title=_title(root), html=inner, author=_meta(root, "author"),
                       published=_published(root), cover=_meta(root, "og:image"), tree=article)


_HIDDEN = re.compile(r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*hidden)\b", re.IGNORECASE)
# The classes that show text to screen readers only ("Image caption", "Share this").
_FOR_SCREEN_READERS = re.compile(r"(?:^|\s)(?:[\w-]+-)?(?:sr-only|screen-?reader(?:-text|-only)?"
                                 r"|visually-?hidden|off-?screen|a11y-hidden)(?:\s|$)", re.IGNORECASE)
# What may be hidden, found by lxml (a walk in Python over every element costs more; the
# few who write these class names in capitals are not looked for).
_MAYBE_HIDDEN = etree.XPath("//*[@hidden or @style" + "".join(
    f" or contains(@class, '{part}')" for part in ("sr-only", "eader", "idden", "creen", "a11y")) + "]")


def _maybe_hidden(root: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    return cast(list[lxml.html.HtmlElement], _MAYBE_HIDDEN(root))


def _hidden(element: lxml.html.HtmlElement) -> bool:
    """Whether the page hides the element from its readers (a log-in box, a paywall's pull-down,
    a second copy for small screens), or shows to screen readers only."""
    if not isinstance(element.tag, str) or element.tag in ("html", "body"):
        return False
    return (element.get("hidden") is not None or bool(_HIDDEN.search(element.get("style") or ""))
            or bool(_FOR_SCREEN_READERS.search(element.get("class") or "")))


def _holds_prose(element: lxml.html.HtmlElement) -> bool:
    """Whether `element` holds paragraphs of prose (two or more of a sentence or longer)."""
    return sum(1 for p in element.iter("p") if len(_runs(_tokens(p.text_content()))) >= PROSE_RUNS) >= 2


@functools.cache
def _readability() -> type[Any]:
    """readability-lxml's Document for a page already parsed and rid of scripts, styles and
    hidden elements: each attempt reads a copy without what its cleaner would drop (links,
    comments) and its cleaner, half of its time with nothing left to do, is not run."""
    from readability import Document  # imported on first use: start-up stays fast

    class Bare(Document):  # type: ignore[misc]  # readability has no types
        def _parse(self, page: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
            bare = copy.deepcopy(page)
            etree.strip_elements(bare, "link", etree.Comment, etree.ProcessingInstruction, with_tail=False)
            return bare

    return Bare


def _container_of(root: lxml.html.HtmlElement, found: Counter[str]) -> lxml.html.HtmlElement | None:
    """The smallest element holding (nearly) all the words readability found."""
    total = sum(found.values())
    if not total:
        return None
    # Words an element holds, counted text node by text node from the innermost out: one
    # pass, where counting each element's text would read the page once an element. As
    # many or more than in its text (two nodes may join into one word): an element with
    # fewer than the coverage needs is passed over, and only the few left are counted.
    held: dict[lxml.html.HtmlElement, int] = {}
    words = _WORD.findall
    for element in reversed(list(root.iter())):
        text = element.text if isinstance(element.tag, str) else None
        count = len(words(text)) if text else 0
        for child in element:
            count += held[child] + (len(words(child.tail)) if child.tail else 0)
        held[element] = count
    # The smallest first: the first that holds what readability found is the one.
    candidates = sorted((held[e], i, e) for i, e in enumerate(root.iter(*_CONTAINERS))
                        if held[e] >= _COVERAGE * total)
    for _, _, element in candidates:
        if sum((found & count_words(element.text_content())).values()) >= _COVERAGE * total:
            return element
    return None


def _densest(root: lxml.html.HtmlElement) -> lxml.html.HtmlElement | None:
    """When readability finds nothing: the element whose own paragraphs hold the most text."""
    best, most = None, 0
    for element in root.iter(*_CONTAINERS):
        text = sum(len(p.text_content().strip()) for p in element if p.tag in ("p", "pre", "ul", "ol"))
        if text > most:
            best, most = element, text
    return best


def count_words(text: str) -> Counter[str]:
    """Words (a CJK character each) and how often they occur."""
    return Counter(_tokens(text))


def _text(fragment: str) -> str:
    """The text of readability's HTML, as lxml's text_content reads it, without a parse."""
    return htmllib.unescape(_TAG.sub("", fragment))


def _meta(root: lxml.html.HtmlElement, name: str) -> str | None:
    for element in root.iter("meta"):
        if name in (element.get("property"), element.get("name")) and element.get("content", "").strip():
            return str(element.get("content")).strip()
    return None


def _title(root: lxml.html.HtmlElement) -> str | None:
    title = _meta(root, "og:title")
    if title:
        return title
    heading = next(root.iter("h1", "title"), None)
    return visible_text(heading) or None if heading is not None else None


def _published(root: lxml.html.HtmlElement) -> datetime | None:
    value = _meta(root, "article:published_time") or next(
        (t.get("datetime") for t in root.iter("time") if t.get("datetime")), None)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


_BLOCKS = ("div", "section", "header", "p", "ul", "ol", "dl", "li", "dd", "dt", "span", "a",
           "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "time", "small", "strong", "em", "b", "i",
           "cite", "figcaption", "label", "button")
_LINES = ("div", "p", "li", "dd", "dt", "figcaption", "blockquote")  # blocks that make a line
_MEDIA = ("img", "picture", "video", "audio", "iframe", "table", "pre", "svg", "math")
_DATA = ("pre", "code", "table", "svg", "math")  # text that is data: nothing in it is pruned
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
# Class words of what surrounds a story on its page: its header block (kicker, byline,
# dates, tags), captions and credits, tools; and the boxes asking for something, which go
# with their images (a QR code, a logo).
_AROUND = frozenset({
    "byline", "author", "authors", "meta", "info", "date", "dateline", "time", "timestamp",
    "published", "updated", "kicker", "eyebrow", "tags", "tag", "topics", "categories", "category",
    "disclaimer", "copyright", "reprint", "reprints", "credit", "credits", "caption", "captions",
    "toolbar", "tools", "print", "bookmark", "save", "follow", "nav", "navigation", "menu",
})
_ASKING = frozenset({
    "paywall", "premium", "member", "members", "membership", "login", "register", "regist", "signup",
    "donate", "donation", "support", "buy", "purchase", "comments", "comment", "disqus",
})
# How a rail of links to other stories is titled.
_RAIL = re.compile(r"(?:related|more (?:from|on|stories|news)|read (?:more|next|also)|also read|see also"
                   r"|recommended|you may (?:also )?like|popular|trending|most (?:read|viewed)|top stories"
                   r"|相关|推荐|延伸阅读|热门|更多|猜你喜欢|関連|관련|เรื่องที่เกี่ยวข้อง|اقرأ أيضا|ذات صلة"
                   r"|lea también|relacionad|lire aussi|à lire|lesen sie auch|mehr zum thema|читайте также)",
                   re.IGNORECASE)
PROSE_RUNS = 10  # a sentence, not a caption or a line of a header
SHORT = 40  # words: a line of a header, a box's few words, not a paragraph of the story
CAPTION = 80  # words: a caption may run to a few sentences
SHINGLE = 3  # words in a run: two blocks sharing runs of three words share text, not just words


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _runs(tokens: list[str]) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + SHINGLE]) for i in range(len(tokens) - SHINGLE + 1)]


def _shingles(text: str) -> set[tuple[str, ...]]:
    return set(_runs(_tokens(text)))


def _prune(container: lxml.html.HtmlElement, story: set[tuple[str, ...]]) -> None:
    """Drop what surrounds the story inside its container (it is kept whole otherwise).

    A block without media goes when it is what surrounds a story wherever it stands
    (`_surrounds`, `_repeated`); or when it comes before the story's first block of prose
    (a header: kicker, byline, dates, share counts), is short or mostly links, and is
    links, a dated line, or what readability did not take for the story. After the
    story's first block, what readability left out stays: it leaves out some lists and
    quotes that are the story's, and footnotes, and a story's closing list of links (so a
    footer is known by its names, not by its place).
    """
    order = {element: i for i, element in enumerate(container.iter())}
    size: dict[lxml.html.HtmlElement, int] = {}  # elements in each subtree, innermost first
    for element in reversed(list(order)):
        size[element] = 1 + sum(size.get(child, 0) for child in element)
    # Where the story starts: its first block of prose (a headline is the header's).
    first = next((order[e] for e in container.iter() if isinstance(e.tag, str)
                  and e.tag not in _HEADINGS and _told(e, story)), len(order))
    named, unshared = _repeated(container), []
    dropped: set[lxml.html.HtmlElement] = set(named)
    for element in container.iter(*_BLOCKS):
        if element is container or element in dropped or any(
                a in dropped or a.tag in _DATA for a in element.iterancestors()):
            continue  # in a dropped block, or in code, a table, a formula: kept with it
        text = element.text_content()
        tokens = _tokens(text)
        if not tokens or embeds(element):
            continue
        links = sum(len(_tokens(a.text_content())) for a in element.iter("a"))
        short, linked = len(tokens) < SHORT, links > 0.5 * len(tokens)
        if next(element.iter(*_MEDIA), None) is not None:
            if _ASKING & _class_words(element) and (short or linked):
                named.append(element)
                dropped.add(element)
            continue
        if _surrounds(element, text, len(tokens), linked):
            named.append(element)
            dropped.add(element)
            continue
        if order[element] + size[element] - 1 >= first or not (short or linked):
            continue
        # Before the story: a header's lines are links, dates and counts, or what readability
        # did not take for the story.
        if linked or _dated(tokens) or not story or _shared(tokens, story) < 0.2:
            unshared.append((element, len(tokens)))
            dropped.add(element)
    # Readability may have found little of a story of an unusual shape (a list of links
    # with notes): then what it did not find is no sign of chrome, and stays.
    if sum(n for _, n in unshared) > 0.5 * len(_tokens(container.text_content())):
        unshared = []
    for element in [*named, *(e for e, _ in unshared)]:
        element.drop_tree()


def _repeated(container: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    """A short line said three times or more is a gallery's or a widget's, not the story's:
    every copy after the first (the innermost element holding it, a line of its own; not a
    heading, which may title each of a story's sections alike; none in data). Readability
    takes such lines for the story as often as not, so what it took is no guard (and a
    refrain written as lines of their own keeps its first line only)."""
    copies: dict[str, list[lxml.html.HtmlElement]] = {}
    for element in container.iter(*_LINES):
        if element is container or not _alone(element):
            continue
        text = visible_text(element)
        if not 0 < len(_tokens(text)) < SHORT:
            continue
        if next(element.iter(*_MEDIA), None) is not None:
            continue
        if not any(isinstance(c.tag, str) and visible_text(c) == text for c in element):
            copies.setdefault(text, []).append(element)
    extra = [element for same in copies.values() if len(same) >= 3 for element in same[1:]]
    taken = set(extra)
    return [element for element in extra
            if not any(a in taken or a.tag in _DATA for a in element.iterancestors())]


def _alone(element: lxml.html.HtmlElement) -> bool:
    """Whether no text runs on either side of the element: it is a line, not a phrase in one."""
    before = element.getprevious()
    parent = element.getparent()
    text_before = before.tail if before is not None else parent.text if parent is not None else ""
    return not (text_before or "").strip() and not (element.tail or "").strip()


def _surrounds(element: lxml.html.HtmlElement, text: str, tokens: int, linked: bool) -> bool:
    """Whether a block is what surrounds a story, wherever it stands: a short block named
    so (byline, dates, tags, caption, paywall, comments), an image's caption (a few
    sentences at most), or a rail of links titled as one.
    (Boxes asking for a subscription, told by their words, take as many lines of stories
    that mention one: measured, they are left to their names.)"""
    if (_AROUND | _ASKING) & _class_words(element) and (tokens < SHORT or linked):
        return True
    if (element.tag == "figcaption" or _captions_an_image(element)) and tokens < CAPTION:
        return True
    return linked and bool(_RAIL.match(" ".join(text.split())[:40]))


def _class_words(element: lxml.html.HtmlElement) -> frozenset[str]:
    """The words of an element's class (not of its id: ids are often the slug of its text)."""
    return name_words(element.get("class", ""))


def _captions_an_image(element: lxml.html.HtmlElement) -> bool:
    """Whether `element` is the text beside an image in a box holding just the two."""
    parent = element.getparent()
    if parent is None or len(parent) != 2 or _own_text(parent).strip():
        return False
    other = parent[0] if parent[1] is element else parent[1]
    return other.tag in ("img", "picture") or (other.tag == "a" and len(other) == 1
                                                and other[0].tag in ("img", "picture"))


def _own_text(element: lxml.html.HtmlElement) -> str:
    return (element.text or "") + "".join(child.tail or "" for child in element)


def _told(element: lxml.html.HtmlElement, story: set[tuple[str, ...]]) -> bool:
    """Whether the element's own text (not its children's) is prose of the story's."""
    runs = _runs(_tokens(_own_text(element)))
    return len(runs) >= PROSE_RUNS and sum(1 for r in runs if r in story) >= 0.5 * len(runs)


def _dated(tokens: list[str]) -> bool:
    """A line of a few words with a number in it: a date, a time, a count."""
    return len(tokens) <= 12 and any(c.isdigit() for token in tokens for c in token)


def _shared(tokens: list[str], story: set[tuple[str, ...]]) -> float:
    """The share of a block's runs of words that are runs of the story (1 when too short)."""
    runs = _runs(tokens)
    return sum(1 for r in runs if r in story) / len(runs) if runs else 1.0


