"""Article HTML → safe HTML that Hugo renders exactly as the browser would.

A post's body is one Markdown HTML block (CommonMark type 6, opened by
``<div>``), which Goldmark passes through untouched *until the first blank
line*. So the cleaner guarantees, for any input:

* an allowlist, not a blocklist: only the elements and attributes articles
  are made of (``ELEMENTS``, ``ATTRIBUTES``, inert ``data-*``/``aria-*``), URLs
  only http(s), mailto, in-page anchors and raster ``data:`` images. Code,
  embedded documents, form controls and what a browser never shows
  (``<template>``, ``<noembed>``) go with their content; any other element is
  unwrapped and its text kept; ``<xmp>``/``<listing>`` become ``<pre>``;
* no blank line anywhere: outside ``<pre>`` a whitespace-only line is
  dropped (the browser collapses it anyway); inside ``<pre>`` and in attribute
  values the newline is written ``&#10;``, which renders the same;
* no chrome: lazy images made real, tracking parameters stripped from links,
  empty wrappers, share bars, "related articles", ad and newsletter blocks
  dropped (36kr's captions ``img-desc`` and editor notes ``editor-note`` stay);
* text intact: every character of article text survives, written the way
  BeautifulSoup's ``html.parser`` round trip writes it (attributes sorted,
  ``<br/>``, only ``& < >`` escaped), which is how the sample post was made,
  so well-formed input comes out byte-identical.

Parsing and tree work use lxml (libxml2): BeautifulSoup's Python tree made
cleaning cost ~6 ms an article. libxml2 stops nesting at 2048 levels and
drops what lies deeper; such input is detected and reduced to its text.
Hugo shortcode openers are escaped later, on the whole post (render.py).
"""

from __future__ import annotations

import functools
import html as htmllib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import cast

import lxml.html
from lxml import etree

from ingest.urls import safe_srcset, safe_url, strip_tracking

# The allowlist: what an article is made of. Anything else is unwrapped (its text
# stays, as the browser would show it) unless it is in _DROP.
ELEMENTS = frozenset({
    "a", "abbr", "acronym", "address", "article", "aside", "audio", "b", "bdi", "bdo", "big",
    "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "data", "dd", "del",
    "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "font", "footer", "h1", "h2",
    "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "i", "img", "ins", "kbd", "li", "main", "mark",
    "nav", "ol", "p", "picture", "pre", "q", "rp", "rt", "ruby", "s", "samp", "section", "small",
    "source", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot",
    "th", "thead", "time", "tr", "track", "tt", "u", "ul", "var", "video", "wbr",
})
# Attributes kept (besides data-* and aria-*, which do nothing without scripts);
# URL attributes among them are checked for their scheme (urls.safe_url).
ATTRIBUTES = frozenset({
    "abbr", "align", "alt", "bgcolor", "border", "cellpadding", "cellspacing", "cite", "class",
    "clear", "color", "cols", "colspan", "controls", "datetime", "default", "dir", "face", "headers",
    "height", "href", "hreflang", "id", "kind", "label", "lang", "loop", "media", "muted", "name",
    "nowrap", "open", "poster", "preload", "rel", "reversed", "rowspan", "rows", "scope", "size",
    "sizes", "span", "src", "srclang", "srcset", "start", "style", "summary", "target", "title",
    "type", "valign", "value", "width",
})
# Elements removed with everything inside them: code, embedded documents, form
# controls, and content a browser never shows (<noembed>, <template>, the TeX
# source MathML carries in <annotation>).
_DROP = frozenset({
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "template",
    "noembed", "noframes", "link", "meta", "base", "svg", "portal", "input", "button", "select",
    "option", "optgroup", "textarea", "datalist", "keygen", "title", "head", "canvas", "map",
    "area", "param", "annotation", "annotation-xml",
})
# Elements that show their content as preformatted text: <pre> is the one a
# reader's browser still knows.
_AS_PRE = frozenset({"xmp", "listing"})
_FULL_HTML = re.compile(r"\A\s*<(?:html|!doctype)", re.IGNORECASE)  # lxml's own test
# libxml2, like a browser, reads all that follows <plaintext> as text: the rest
# of the article would become one block of raw markup. It is read as the markup it is.
_PLAINTEXT = re.compile(r"</?plaintext\b[^>]*>", re.IGNORECASE)
_VOID = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "menuitem",
    "meta", "param", "source", "track", "wbr", "basefont", "bgsound", "command", "frame",
    "image", "isindex", "nextid", "spacer",
})
URL_ATTRS = frozenset({
    "href", "src", "action", "poster", "background", "cite", "longdesc", "lowsrc", "dynsrc",
    "usemap", "data", "codebase", "ping", "manifest", "profile", "icon",
    "data-src", "data-original", "data-href", "data-url", "data-lazy-src", "data-actualsrc",
})
_CHROME_NAMES = frozenset({
    "share", "sharing", "shares", "social", "sns", "related", "recommend", "recommended",
    "newsletter", "subscribe", "subscription", "ad", "ads", "advert", "advertisement", "sponsor",
    "sponsored", "promo", "breadcrumb", "breadcrumbs", "pagination", "pager",
})
_TOKEN = re.compile(r"[\s_-]+")
_BLANK_RUN = re.compile(r"\n[ \t\n]*\n")  # from a newline to the last of its blank lines
_CAMEL_CASE = re.compile(r"[a-z]+(?:[A-Z][a-z]+)+")
_CAMEL_WORD = re.compile(r"[A-Z]?[a-z]+")
_PARTS = ("bar", "box", "tools", "links", "buttons", "button", "widget", "wrap", "wrapper", "area",
          "block", "list", "panel", "container")
_EMBEDS = ("twitter-tweet", "instagram-media", "tiktok-embed")
_WRAPPERS = ("div", "p", "span", "section", "figure", "center", "font", "b", "strong", "i", "em")
_LAZY_SRC = ("data-src", "data-original", "data-actualsrc", "data-lazy-src", "data-lazyload")
_STYLE_DANGER = re.compile(r"expression|javascript:|vbscript:|url\s*\(|behavior|binding|@import",
                           re.IGNORECASE)
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][-A-Za-z0-9_.]*$")  # what lxml can set back
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
# lxml.html's own parser picks each element's class in Python (form controls get classes
# of their own), a call every time an element is touched: a third of the cleaner's time.
# Nothing here uses those classes: every element is a plain HtmlElement, found in C.
_LOOKUP = etree.ElementDefaultClassLookup(
    element=lxml.html.HtmlElement, comment=lxml.html.HtmlComment,
    pi=lxml.html.HtmlProcessingInstruction, entity=lxml.html.HtmlEntity)


@dataclass(frozen=True, slots=True, eq=False)
class Cleaned:
    """An article's HTML after the cleaner, and the tree it was written from: the stages
    after the cleaner read the tree (its text, its blocks) and never parse the HTML again.
    Nothing changes the tree once it is written."""

    html: str
    tree: lxml.html.HtmlElement  # a <div> holding the article


def clean(html: str, base_url: str | None = None) -> Cleaned:
    """Sanitize `html` and make it Hugo-safe; relative URLs resolve against `base_url`."""
    return clean_tree(parse_fragment(html), base_url)


def clean_tree(root: lxml.html.HtmlElement, base_url: str | None = None) -> Cleaned:
    """`clean` of an article already parsed, as a <div> holding it (it is changed)."""
    etree.strip_tags(root, etree.Comment, etree.ProcessingInstruction)  # as parse_fragment reads
    sanitize(root, base_url)
    html = serialize(root)
    if _CONTROL.search(html):  # a part of a page parsed whole keeps them; parse_fragment drops them
        for element in root.iter():
            element.text, element.tail = _no_controls(element.text), _no_controls(element.tail)
            for name, value in element.attrib.items():
                element.set(name, _CONTROL.sub("", value))
        html = serialize(root)
    return Cleaned(html, root)


def _no_controls(text: str | None) -> str | None:
    return _CONTROL.sub("", text) if text else text


def html_parser(*, huge_tree: bool = False, remove_comments: bool = False,
                remove_pis: bool = False) -> lxml.html.HTMLParser:
    """An HTML parser whose trees are all plain HtmlElements; a new one a call, so that its
    error log holds one parse's errors (parse_fragment reads it), whatever thread asks."""
    parser = lxml.html.HTMLParser(huge_tree=huge_tree, remove_comments=remove_comments,
                                  remove_pis=remove_pis)
    parser.set_element_class_lookup(_LOOKUP)
    return parser


def new_div() -> lxml.html.HtmlElement:
    """An empty <div> to hold an article: what is moved into it stays a plain HtmlElement."""
    return cast(lxml.html.HtmlElement, html_parser().makeelement("div"))


def tree_of(article: str | lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    """A cleaned article's tree, parsed from its HTML when only that is at hand."""
    if isinstance(article, str):
        return cast(lxml.html.HtmlElement,
                    lxml.html.fragment_fromstring(article, create_parent="div", parser=html_parser()))
    return article


def parse_document(html: str) -> lxml.html.HtmlElement:
    """A whole page as an lxml tree (typed as what lxml.html really returns)."""
    return cast(lxml.html.HtmlElement,
                lxml.html.document_fromstring(_PLAINTEXT.sub("", html), parser=html_parser()))


def visible_text(element: lxml.html.HtmlElement) -> str:
    """The text of `element` as a reader sees it: each run of white space one space."""
    return " ".join(element.text_content().split())


def text_length(element: lxml.html.HtmlElement) -> int:
    """How much text `element` holds: its characters, white space aside."""
    return len("".join(element.text_content().split()))


def has_class(element: lxml.html.HtmlElement, name: str) -> bool:
    return name in element.get("class", "").split()


def parse_fragment(html: str) -> lxml.html.HtmlElement:
    """`html` as children of a <div>; input nested beyond libxml2's limit keeps its text."""
    html = _PLAINTEXT.sub("", _CONTROL.sub("", html.replace("\r\n", "\n").replace("\r", "\n")))
    if not html.strip(" \t\n\f"):  # a no-break space is text, not markup whitespace
        return new_div()
    parser = html_parser(huge_tree=True, remove_comments=True, remove_pis=True)
    root = _fragment(html, parser)
    if any(e.type_name == "ERR_RESOURCE_LIMIT" for e in parser.error_log):
        root = _fragment(_text_only(html), html_parser())
    return root


def _fragment(html: str, parser: lxml.html.HTMLParser) -> lxml.html.HtmlElement:
    """`html` as the children of a <div>, as lxml.html.fragment_fromstring makes it, but
    keeping leading text of any kind (lxml drops what str.strip() empties: no-break
    spaces, ideographic spaces) and reading input with no body at all (a lone
    DOCTYPE, "<html></html>") as empty, where lxml raises."""
    if not _FULL_HTML.match(html):
        html = f"<html><body>{html}</body></html>"
    root = cast(lxml.html.HtmlElement, parser.makeelement("div"))
    try:
        body = lxml.html.document_fromstring(html, parser=parser).find("body")
    except etree.ParserError:
        return root
    if body is not None:
        root.text = body.text
        root.extend(body)
    return root


def sanitize(root: lxml.html.HtmlElement, base_url: str | None) -> None:
    for element in list(root.iter(*_DROP)):
        if element.tag in _VOID:  # libxml2 nests what follows <embed> etc. inside them
            element.drop_tag()
        else:
            element.drop_tree()
    resolve_lazy_images(root)
    prune_chrome(root)
    for element in list(root.iter()):
        if not isinstance(element.tag, str):  # entities and other non-elements libxml2 kept
            element.drop_tree()
            continue
        if element.tag in _AS_PRE:
            element.tag = "pre"
        elif element.tag not in ELEMENTS and element is not root:
            element.drop_tag()  # custom elements, MathML, Office's <o:p>: their text stays
            continue
        _sanitize_attributes(element, base_url)


def prune_chrome(root: lxml.html.HtmlElement) -> None:
    """Drop share bars, related-article lists, ads, and wrappers left empty."""
    for element in list(root.iter()):
        named = element.get("class") or element.get("id") if isinstance(element.tag, str) else None
        if not named or element is root or element.getparent() is None:
            continue
        names = name_words(f"{element.get('class', '')} {element.get('id', '')}")
        if _CHROME_NAMES & names and _is_chrome_sized(element) and not embeds(element):
            element.drop_tree()
    # Innermost first: a wrapper whose own wrappers were dropped is empty when nothing is
    # left in it at all, no element and no text (an O(1) test, not a walk of its subtree).
    for element in reversed(list(root.iter(*_WRAPPERS))):
        if (element is not root and len(element) == 0 and not (element.text or "").strip()
                and element.get("id") is None and element.get("name") is None):
            element.drop_tag()  # keeps the whitespace it held: <b> </b> separates two words


@functools.lru_cache(maxsize=4096)  # a site writes the same few names on every page
def name_words(names: str) -> frozenset[str]:
    """The words of class names or ids: `share-bar post_meta captionText` → share, bar, post,
    meta, caption, text."""
    words: set[str] = set()
    for name in _TOKEN.split(names):
        # camelCase is split only when it is words (a capital, then small letters): a hash
        # such as "CsDsdfY11osb" is no sentence.
        words.update(_CAMEL_WORD.findall(name) if _CAMEL_CASE.fullmatch(name) else [name])
    words = {word.lower() for word in words}
    # A name run together with what it is, "sharebar", "commentbox", is its first word too.
    return frozenset(words | {word[:-len(end)] for word in words for end in _PARTS
                              if word.endswith(end) and len(word) - len(end) >= 3})


def embeds(element: lxml.html.HtmlElement) -> bool:
    """Whether `element` holds a post quoted in the story: a tweet, an Instagram or TikTok post
    (their blockquote, by the embed's own class; its wrapper is often classed "social")."""
    return any(name in (quote.get("class") or "") for quote in element.iter("blockquote")
               for name in _EMBEDS)


def _is_chrome_sized(element: lxml.html.HtmlElement) -> bool:
    """Chrome is short or made of links; an article block merely named "share-price" is not."""
    text = visible_text(element)
    linked = sum(len(visible_text(a)) for a in element.iter("a"))
    return len(text) < 200 or linked > 0.5 * len(text)


def resolve_lazy_images(root: lxml.html.HtmlElement) -> None:
    """Make lazy-loaded images real: the browser's script would have, the archive has none.

    The lazy source (``data-src``, ``data-original``, …) replaces the placeholder
    ``src``, ``data-srcset`` becomes ``srcset``; a ``<noscript>`` fallback stays
    only when it shows an image not shown already.
    """
    for element in root.iter("img", "source"):
        lazy = next((element.get(a) for a in _LAZY_SRC if element.get(a)), None)
        if lazy and element.tag == "img":
            element.set("src", lazy)
        if element.get("data-srcset"):
            element.set("srcset", element.get("data-srcset", ""))
        for attr in (*_LAZY_SRC, "data-srcset"):
            element.attrib.pop(attr, None)
    for noscript in list(root.iter("noscript")):
        inner = list(noscript.iter("img"))
        shown = {img.get("src") for img in root.iter("img") if img not in inner}
        if inner and all(img.get("src") in shown for img in inner):
            noscript.drop_tree()
        else:
            noscript.drop_tag()


def _sanitize_attributes(element: lxml.html.HtmlElement, base_url: str | None) -> None:
    if not element.attrib:
        return
    items = element.items()
    kept = [(name, value) for name, value in
            (_safe_attribute(element.tag, name, value, base_url) for name, value in items)
            if value is not None]
    if kept != items:
        element.attrib.clear()
        for name, value in kept:
            element.set(name, value)


def _safe_attribute(tag: str, name: str, value: str, base_url: str | None) -> tuple[str, str | None]:
    """The attribute as it may stay, its value None when it must go."""
    lowered = name.lower()
    if not _ATTRIBUTE_NAME.match(name) or not (
            lowered in ATTRIBUTES or lowered.startswith(("data-", "aria-"))):
        return name, None
    if lowered == "style" and _STYLE_DANGER.search(value):
        return name, None
    if lowered in URL_ATTRS:
        url = safe_url(value, base_url, image=tag == "img")
        return name, strip_tracking(url) if url and lowered == "href" else url
    if lowered in ("srcset", "data-srcset"):
        return name, safe_srcset(value, base_url) or None
    return name, value


def serialize(root: lxml.html.HtmlElement) -> str:
    """The children of `root` as HTML with no blank line, as BeautifulSoup writes them."""
    out: list[str] = [_text(root.text, preserve=False)]
    write = out.append
    in_pre = 0
    # A walk, not a recursion: libxml2 nests up to 2048 levels, Python recurses up to 1000.
    for event, element in etree.iterwalk(root, events=("start", "end")):
        if element is root:
            continue
        tag = element.tag
        if event == "start":
            items = element.items()
            attributes = _attributes(items) if items else ""
            write(f"<{tag}{attributes}/>" if tag in _VOID else f"<{tag}{attributes}>")
            if tag == "pre":
                in_pre += 1
            if element.text:
                write(_text(element.text, in_pre > 0))
        else:
            if tag == "pre":
                in_pre -= 1
            if tag not in _VOID:
                write(f"</{tag}>")
            if element.tail:
                write(_text(element.tail, in_pre > 0))
    html = "".join(out).strip(" \t\n")
    # Only spaces of any kind, no element: an empty article (libxml2 reads it so too).
    return "" if not html.strip() else html


def _attributes(items: Iterable[tuple[str, str]]) -> str:
    parts = []
    for name, value in sorted(items):
        value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        value = value.replace("\n", "&#10;")
        if '"' not in value:
            parts.append(f' {name}="{value}"')
        elif "'" not in value:
            parts.append(f" {name}='{value}'")
        else:
            parts.append(f' {name}="{value.replace(chr(34), "&quot;")}"')
    return "".join(parts)


def _text(text: str | None, preserve: bool) -> str:
    if not text:
        return ""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _mark_blank_lines(escaped, preserve)


def no_blank_lines(text: str) -> str:
    """`text` (HTML that follows a tag) with its whitespace-only lines dropped."""
    return _mark_blank_lines(text, preserve=False)


def _mark_blank_lines(text: str, preserve: bool) -> str:
    """Drop (or, where whitespace matters, encode) newlines that would end a blank line.

    Text always follows a tag or starts the fragment (which is stripped), so only
    newlines inside it can make whitespace-only lines: those after the first of a run
    of spaces, tabs and newlines.
    """
    if "\n" not in text:
        return text
    return _BLANK_RUN.sub(_encode_blank_lines if preserve else _drop_blank_lines, text)


def _drop_blank_lines(run: re.Match[str]) -> str:
    return "\n" + run.group().replace("\n", "")


def _encode_blank_lines(run: re.Match[str]) -> str:
    """The run's newlines, every other one written ``&#10;``: a line left holding only
    spaces is not blank, the one after it may be."""
    out: list[str] = []
    line_blank = False
    for char in run.group():
        if char != "\n":
            out.append(char)
        elif line_blank:
            out.append("&#10;")
            line_blank = False
        else:
            out.append("\n")
            line_blank = True
    return "".join(out)


class _TextCollector(HTMLParser):
    """Streams HTML into paragraphs of text, with no tree and so no depth limit."""

    _BREAKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6",
                         "blockquote", "pre", "section", "article", "table"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[list[str]] = [[]]
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self._BREAKS:
            self.paragraphs.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BREAKS:
            self.paragraphs.append([])

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.paragraphs[-1].append(data)


def _text_only(html: str) -> str:
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    texts = (" ".join("".join(p).split()) for p in collector.paragraphs)
    return "\n".join(f"<p>{htmllib.escape(t, quote=False)}</p>" for t in texts if t)
