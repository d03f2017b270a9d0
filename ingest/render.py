"""Article → the text of its post (pure: the same article gives the same bytes).

Front matter keys come in the sample's order (title, categories, date, lastmod,
then the static keys), then ours: ``canonicalURL`` and ``ingest`` (the entry's
identity and the hash of its source, which let a run without state recognise
what is archived already). The body is the sample's, with its one fix: the
``[原文](URL)`` line gets blank lines around it, so Hugo renders a link.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

import yaml

from ingest.models import Article

# libyaml's emitter: PyYAML's pure-Python one costs ~6 ms a post.
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_SHORTCODE_OPENER = re.compile(r"\{\{(?=[<%])")
_URL_BREAKERS = re.compile(r"[\s()<>\\`]")
_ENTITY_LIKE = re.compile(r"&(?=#?[A-Za-z0-9]+;)")


def http_date(moment: datetime) -> str:
    """RFC 1123 in GMT, the sample's date format: ``Wed, 21 Feb 2024 05:47:03 GMT``."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def front_matter(article: Article, static: Mapping[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "title": article.title,
        "categories": [article.category],
        "date": http_date(article.date),
        "lastmod": http_date(article.lastmod),
        **static,
    }
    if article.canonical_url:
        meta["canonicalURL"] = article.canonical_url
    meta["ingest"] = {"id": article.key, "source": article.source_hash}
    return meta


class StaticKeys:
    """The static front matter, as YAML text made once for every post of a run.

    Only `cover` may change from post to post (``cover: article``): it is kept
    apart, in its place among the other keys.
    """

    def __init__(self, keys: Mapping[str, Any]) -> None:
        names = list(keys)
        cut = names.index("cover") if "cover" in names else len(names)
        self._before = _yaml({k: keys[k] for k in names[:cut]})
        self._cover = keys.get("cover")
        self._after = _yaml({k: keys[k] for k in names[cut + 1:]})
        self._static_cover = _yaml({"cover": self._cover}) if self._cover is not None else ""

    def text(self, article: Article) -> str:
        if not article.cover:
            return self._before + self._static_cover + self._after
        base = self._cover if isinstance(self._cover, Mapping) else {}
        cover = {**base, "image": article.cover, "alt": article.title, "relative": True}
        return self._before + _yaml({"cover": cover}) + self._after


def render_post(article: Article, static: StaticKeys) -> str:
    generated = front_matter(article, {})
    head = {k: generated.pop(k) for k in ("title", "categories", "date", "lastmod")}
    meta = _yaml(head) + static.text(article) + _yaml(generated)
    body = f"<div>\n\n{article.block_html}\n</div>\n\n"
    if article.source_url:
        body += f"<div>\n\n[原文]({markdown_url(article.source_url)})\n\n</div>\n\n"
    return f"---\n{meta}---\n\n{escape_shortcodes(body)}"


_SOURCE_LINK = re.compile(r"<div>\n\n\[原文\]\((?P<url>[^\s)]*)\)\n\n</div>\n")


def split_body(body: str) -> tuple[str, str | None]:
    """A post's body as `render_post` writes it, taken apart: (the article's <div>
    holding the block, the 原文 link's URL or None)."""
    body = body.lstrip("\n")
    match = _SOURCE_LINK.search(body)
    if not match:
        return body.rstrip("\n") + "\n", None
    return body[: match.start()].rstrip("\n") + "\n", match.group("url")


def _yaml(mapping: Mapping[str, Any]) -> str:
    """`mapping` as block YAML, keys in their order."""
    if not mapping:
        return ""
    try:
        # The nodes PyYAML's representer would make, made here: a post's strings, lists and
        # mappings cost a third less so (its representer is Python; its emitter is C).
        return str(yaml.serialize(_node(mapping), Dumper=_Dumper, allow_unicode=True, width=1 << 20))
    except TypeError:  # another type (a static key's number, a date): the representer's
        return str(yaml.dump(mapping, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                             default_flow_style=False, width=1 << 20))


def _node(value: object) -> yaml.Node:
    if isinstance(value, str):
        return yaml.ScalarNode("tag:yaml.org,2002:str", value)
    if isinstance(value, list):
        return yaml.SequenceNode("tag:yaml.org,2002:seq", [_node(v) for v in value], flow_style=False)
    if isinstance(value, dict):
        return yaml.MappingNode("tag:yaml.org,2002:map", [(_node(k), _node(v)) for k, v in value.items()],
                                flow_style=False)
    raise TypeError(f"no node made here for {type(value).__name__}")


def escape_shortcodes(text: str) -> str:
    """Hugo expands ``{{<`` and ``{{%`` even inside raw HTML; ``{&#123;`` shows the same."""
    return _SHORTCODE_OPENER.sub("{&#123;", text)


def markdown_url(url: str) -> str:
    """`url` as a Markdown link destination that CommonMark reads back unchanged."""
    url = _URL_BREAKERS.sub(lambda m: quote(m.group(), safe=""), url)
    return _ENTITY_LIKE.sub(r"\\&", url)
