"""Feeds in and out of config.yaml: OPML import (comments kept) and export.

Export writes OPML 2.0: one ``<outline type="rss">`` a feed, ``text`` and
``title`` its name, ``xmlUrl`` its URL, and ingest's per-feed overrides as
attributes of their own (``fullContent``, ``images``, ``summary``,
``imageMaxWidth``, ``imageFormat``), so that exporting and importing again
loses nothing. Import reads any OPML (folders
are flattened), adds the feeds whose URL config.yaml lacks, and rewrites the
file through ruamel.yaml, which keeps its comments and layout; the result is
validated before it replaces the file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from ingest import archive
from ingest.config import Config, check_url, parse_config
from ingest.errors import ConfigError

_OVERRIDES = (("full_content", "fullContent"), ("images", "images"), ("summary", "summary"),
              ("image_max_width", "imageMaxWidth"), ("image_format", "imageFormat"))


@dataclass(frozen=True, slots=True)
class FeedLine:
    name: str
    url: str
    overrides: tuple[tuple[str, Any], ...] = ()


def export(config: Config) -> bytes:
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = "ingest feeds"
    body = etree.SubElement(root, "body")
    for feed in config.feeds:
        outline = etree.SubElement(body, "outline", type="rss", text=feed.name, title=feed.name,
                                   xmlUrl=feed.url)
        for key, attribute in _OVERRIDES:
            value = getattr(feed, key)
            if value is not None:
                outline.set(attribute, str(value).lower() if isinstance(value, bool) else str(value))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def read(data: bytes) -> list[FeedLine]:
    """The feeds of an OPML document; ConfigError if it is not OPML."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"not an OPML file: {exc}") from None
    if root.tag != "opml":
        raise ConfigError(f"not an OPML file: the root element is <{root.tag}>")
    feeds = []
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or "").strip()
        if not url:
            continue  # a folder
        name = " ".join((outline.get("title") or outline.get("text") or "").split())
        overrides = tuple((key, _value(key, outline.get(attribute)))
                          for key, attribute in _OVERRIDES if outline.get(attribute) is not None)
        feeds.append(FeedLine(name or urlsplit(url).hostname or url, url, overrides))
    return feeds


def _value(key: str, text: str | None) -> Any:
    if key == "images":
        return text == "true"
    if key == "image_max_width" and text and text.isdigit():
        return int(text)
    return text


def import_into(config_path: Path, lines: list[FeedLine]) -> list[FeedLine]:
    """Add the feeds config.yaml lacks (by URL); return those added."""
    from ruamel.yaml import YAML  # round trips keep comments; only this command needs it

    yaml = YAML()
    yaml.preserve_quotes = True
    data = yaml.load(config_path.read_text(encoding="utf-8"))
    feeds = data.setdefault("feeds", [])
    urls = {str(f.get("url")) for f in feeds}
    names = {str(f.get("name")) for f in feeds}
    added = []
    for line in lines:
        try:
            check_url(line.url)
        except ValueError:
            continue  # not http(s): nothing ingest can poll
        if line.url in urls:
            continue
        name = _unique(line.name, names)
        feeds.append({"name": name, "url": line.url, **dict(line.overrides)})
        urls.add(line.url)
        names.add(name)
        added.append(FeedLine(name, line.url, line.overrides))
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    text = buffer.getvalue()
    parse_config(YAML(typ="safe").load(text), where=str(config_path))  # never write a broken config
    archive.write_atomic(config_path, text.encode())
    return added


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate
