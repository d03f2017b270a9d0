"""Feed bytes → ParsedFeed: RSS 0.9x/1.0/2.0 and Atom, through feedparser.

feedparser only ever sees bytes here, never a URL: all HTTP is the fetcher's.
What feedparser leaves rough is smoothed here:

* a body that is an HTML page or a bot wall is refused before parsing;
* dates: feedparser's parse (RFC 822, W3C, 36kr's ``2026-03-26 10:00:00  +0800``,
  CDATA-wrapped), then localized month names (``Seg, 24 Set 2018``);
* content: the longest of content:encoded / content / description / summary,
  with RSS-GPT's literal ``None`` and double-escaped ``<![CDATA[`` unwrapped;
* identity (`Entry.key`): a 36kr article id in any URL form, else the guid,
  else the link, else a hash of title and date (36kr newsflashes have neither);
* links resolved against the feed, plain-text content escaped into HTML.

Dates that are missing stay None; the pipeline then uses the updated date, then
the time the entry was first seen.
"""

from __future__ import annotations

import calendar
import codecs
import hashlib
import html
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from ingest import sniff
from ingest.errors import BlockedError, NotAFeedError, ParseError
from ingest.models import Entry, ParsedFeed, fingerprint
from ingest.sources import kr36

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_TAG = re.compile(r"<[^>]*>")
_CODE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
# UTF-32's marks first: UTF-32-LE's begins with UTF-16-LE's.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_DOCTYPE = re.compile(rb"<!DOCTYPE[^\[>]*(?:\[.*?\]\s*)?>", re.IGNORECASE | re.DOTALL)
# What may come before the root element besides a DOCTYPE.
_PROLOG_ITEM = re.compile(rb"\xef\xbb\xbf|\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
_XML_ENCODING = re.compile(rb"""encoding\s*=\s*["'][\w.:-]+["']""")
_CDATA = re.compile(r"\A\s*<!\[CDATA\[(.*?)\]\]>\s*\Z", re.DOTALL)


def parse_feed(body: bytes, url: str, content_type: str = "") -> ParsedFeed:
    """Parse a feed body fetched from `url`; raise ParseError if it is no feed."""
    body, content_type = _utf8_from_bom(body, content_type, url)
    body = body.lstrip(b" \t\r\n")  # a newline before <?xml makes the XML ill-formed
    marker = sniff.challenge_marker(body)
    if marker:
        raise BlockedError(url, f"a bot wall answered instead of the feed (marker {marker!r}); "
                                "nothing archived, the feed is tried again next run")
    if not body:
        raise NotAFeedError(f"empty body instead of a feed ({url})")
    if sniff.looks_like_html(body):
        title = sniff.html_title(body)
        named = f" titled {title!r}" if title else ""
        raise NotAFeedError(f"an HTML page{named}, not a feed ({url}): check the feed URL")
    body, content_type = _read_as_superset(body, content_type)
    body = _without_doctype(body)
    # No content-location: feedparser would resolve relative guids against it, and
    # an entry's identity must not depend on where its feed was fetched from.
    headers = {"content-type": content_type} if content_type else {}
    data = feedparser.parse(body, response_headers=headers, sanitize_html=False,
                            resolve_relative_uris=False)
    if not data.get("version"):
        raise NotAFeedError(f"neither RSS nor Atom ({url}): {_bozo(data) or 'no feed element'}")
    problem = _bozo(data)
    if problem and "undefined entity" not in problem:
        raise ParseError(f"malformed XML ({url}): {problem}; "
                         "nothing archived from it, the feed is tried again next run")
    channel = data.get("feed", {})
    base = _absolute(channel.get("link"), url) or url
    entries = tuple(_entry(raw, base) for raw in data.get("entries", []))
    return ParsedFeed(title=_text(channel.get("title", "")), link=_absolute(channel.get("link"), url),
                      entries=entries)


def _without_doctype(body: bytes) -> bytes:
    """`body` without the DOCTYPEs of its prolog.

    Entity declarations are never needed by a feed and are how entity bombs and
    external entities get in. Only the prolog is searched, past comments (a
    DOCTYPE quoted in a comment first must not shield the real one) and never
    into the content, where an article may quote one.
    """
    position = 0
    while True:
        item = _PROLOG_ITEM.match(body, position)
        if item:
            position = item.end()
            continue
        doctype = _DOCTYPE.match(body, position)
        if doctype is None:
            return body
        body = body[:position] + body[doctype.end():]


def _utf8_from_bom(body: bytes, content_type: str, url: str) -> tuple[bytes, str]:
    """A UTF-16 or UTF-32 body, as UTF-8: its byte-order mark decides, whatever the
    labels say (`text/xml` without a charset would otherwise mean ASCII)."""
    codec = next((name for bom, name in _BOMS if body.startswith(bom)), None)
    if codec is None:
        return body, content_type
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as exc:
        raise ParseError(f"the body starts with a {codec.upper()} byte-order mark but is not "
                         f"{codec.upper()} ({url}): {exc.reason} at byte {exc.start}") from None
    body = text.encode()
    body = _XML_ENCODING.sub(b'encoding="utf-8"', body[:200], count=1) + body[200:]
    return body, "application/xml; charset=utf-8" if content_type else ""


def _read_as_superset(body: bytes, content_type: str) -> tuple[bytes, str]:
    """A feed labelled gb2312 or gbk is read as gb18030: real ones use GBK-only characters."""
    declared = sniff.declared_charset(body, content_type)
    if not declared or sniff.codec_for(declared) != "gb18030":
        return body, content_type
    body = _XML_ENCODING.sub(b'encoding="gb18030"', body[:200], count=1) + body[200:]
    return body, "application/xml; charset=gb18030" if content_type else content_type


def _bozo(data: Any) -> str | None:
    exc = data.get("bozo_exception")
    if exc is None or isinstance(exc, feedparser.CharacterEncodingOverride | feedparser.NonXMLContentType):
        return None
    return str(exc).removeprefix("<unknown>:")


def _entry(raw: Any, base: str) -> Entry:
    link = _absolute(raw.get("link"), base)
    guid = (raw.get("id") or "").strip()
    published = _date(raw, "published")
    updated = _date(raw, "updated")
    content = _content(raw)
    title = raw.get("title", "")
    # Titles are text: a script's or a style's source is never part of one, even in plain text.
    title = _text(title) if raw.get("title_detail", {}).get("type") != "text/plain" \
        else _clean_line(_CODE.sub("", title))
    if not title:
        title = _clean_line(_TAG.sub(" ", html.unescape(content)))[:60] or (link or "untitled")
    key = entry_key(guid, link, title, published)
    return Entry(
        key=key,
        title=title,
        link=link,
        published=published,
        updated=updated,
        content=content,
        author=_clean_line(raw.get("author", "")) or None,
        source_hash=fingerprint(title, link, published, content),
    )


def entry_key(guid: str, link: str | None, title: str, published: datetime | None) -> str:
    """The identity of an entry, stable across polls, URL forms and lost state."""
    for candidate in (link, guid):
        article = kr36.article_id(candidate)
        if article:
            return f"36kr:{article}"
    if guid:
        return guid
    if link:
        return link
    stamp = published.isoformat() if published else ""
    return "sha256:" + hashlib.sha256(f"{title}\n{stamp}".encode()).hexdigest()[:32]


def _content(raw: Any) -> str:
    candidates: list[tuple[str, str]] = [
        (c.get("value", ""), c.get("type", "text/html")) for c in raw.get("content", [])
    ]
    if "summary" in raw:
        candidates.append((raw["summary"], raw.get("summary_detail", {}).get("type", "text/html")))
    best = ""
    for value, kind in candidates:
        value = _unwrap_cdata(value)
        if value.strip() == "None":  # RSS-GPT writes Python's None for a missing summary
            continue
        if kind == "text/plain":
            value = html.escape(value, quote=False)
        if len(value) > len(best):
            best = value
    return best


def _unwrap_cdata(value: str) -> str:
    """Feeds that escape their CDATA section leave ``<![CDATA[ … ]]>`` in the text."""
    match = _CDATA.match(value)
    return match.group(1) if match else value


def _absolute(link: str | None, base: str) -> str | None:
    if not link or not link.strip():
        return None
    absolute = urljoin(base, link.strip())
    return absolute if urlsplit(absolute).scheme in ("http", "https") else None


def _text(value: str) -> str:
    """A single line of text from a title that may hold markup and entities."""
    return _clean_line(html.unescape(_TAG.sub("", _CODE.sub("", value))))


def _clean_line(value: str) -> str:
    return " ".join(_CONTROL.sub("", value).split())


# A date outside these bounds is the feed's error, not a time (year 9999 at -1200
# is past what a datetime holds; year 1 or the Unix epoch stand for "no date"):
# the entry is dated by the next rule (updated, then first seen).
_EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _date(raw: Any, field: str) -> datetime | None:
    # dict.get: FeedParserDict.get would answer `updated` with the published date.
    parsed = dict.get(raw, f"{field}_parsed")
    if parsed:
        try:
            return _plausible(datetime.fromtimestamp(calendar.timegm(parsed), UTC))
        except (OverflowError, ValueError, OSError):
            return None
    text = dict.get(raw, field)
    return _plausible(parse_loose_date(text)) if text else None


def _plausible(moment: datetime | None) -> datetime | None:
    return moment if moment is not None and _EARLIEST <= moment < _LATEST else None


# Month abbreviations of feeds that localize RFC 822 dates (Portuguese, Spanish,
# French, German, Italian), which feedparser leaves unparsed.
_MONTHS = {
    **dict.fromkeys(("jan", "janv", "ene", "gen"), 1),
    **dict.fromkeys(("fev", "fév", "feb", "févr"), 2),
    **dict.fromkeys(("mar", "mär", "mars"), 3),
    **dict.fromkeys(("abr", "apr", "avr"), 4),
    **dict.fromkeys(("mai", "may", "mag"), 5),
    **dict.fromkeys(("jun", "juin", "giu"), 6),
    **dict.fromkeys(("jul", "juil", "lug"), 7),
    **dict.fromkeys(("ago", "aug", "août", "aou"), 8),
    **dict.fromkeys(("set", "sep", "sept"), 9),
    **dict.fromkeys(("out", "oct", "okt", "ott"), 10),
    **dict.fromkeys(("nov",), 11),
    **dict.fromkeys(("dez", "dic", "déc", "dec"), 12),
}
_LOOSE = re.compile(
    r"(\d{1,2})\s+([^\W\d_]+)\.?\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(?:([+-])(\d{2}):?(\d{2}))?"
)


def parse_loose_date(text: str) -> datetime | None:
    """Parse ``[Weekday,] DD Mon YYYY HH:MM[:SS] [±HHMM]`` with localized month names."""
    match = _LOOSE.search(text)
    if not match:
        return None
    day, month_name, year, hour, minute, second, sign, tz_h, tz_m = match.groups()
    name = month_name.lower()
    month = _MONTHS.get(name) or _MONTHS.get(name[:4]) or _MONTHS.get(name[:3])
    if month is None:
        return None
    offset = timedelta(hours=int(tz_h), minutes=int(tz_m)) if sign else timedelta(0)
    try:
        local = datetime(int(year), month, int(day), int(hour), int(minute), int(second or 0),
                         tzinfo=timezone(-offset if sign == "-" else offset))
        return local.astimezone(UTC)
    except (ValueError, OverflowError):  # no such day, or beyond datetime's years 1-9999
        return None
