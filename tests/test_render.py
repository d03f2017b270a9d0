from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import render
from ingest.config import SAMPLE_FRONT_MATTER
from ingest.models import Article
from ingest.render import StaticKeys, escape_shortcodes, http_date, markdown_url, render_post
from tests.conftest import front_matter


def article(**changes: object) -> Article:
    moment = datetime(2024, 2, 21, 5, 47, 3, tzinfo=UTC)
    base: dict[str, object] = {
        "key": "36kr:1", "title": "标题", "category": "36krai", "date": moment, "lastmod": moment,
        "source_url": "https://www.36kr.com/p/1", "canonical_url": "https://36kr.com/p/1",
        "block_html": "<div>\n<p>x</p>\n</div>", "source_hash": "abc",
    }
    base.update(changes)
    return Article(**base)  # type: ignore[arg-type]


def test_http_date_is_rfc1123_gmt_whatever_the_zone() -> None:
    moment = datetime(2024, 2, 21, 13, 47, 3, tzinfo=timezone(timedelta(hours=8)))
    assert http_date(moment) == "Wed, 21 Feb 2024 05:47:03 GMT"


def test_front_matter_order_and_extra_keys() -> None:
    meta, body = front_matter(render_post(article(), StaticKeys(SAMPLE_FRONT_MATTER)))
    assert list(meta) == ["title", "categories", "date", "lastmod", *SAMPLE_FRONT_MATTER,
                          "canonicalURL", "ingest"]
    assert meta["ingest"] == {"id": "36kr:1", "source": "abc"}
    assert body == ("\n<div>\n\n<div>\n<p>x</p>\n</div>\n</div>\n\n"
                    "<div>\n\n[原文](https://www.36kr.com/p/1)\n\n</div>\n\n")


def test_no_source_link_block_without_a_link() -> None:
    assert "原文" not in render_post(article(source_url=None), StaticKeys({}))


def test_shortcode_openers_escaped_in_body_not_in_title() -> None:
    text = render_post(article(title="{{< x >}}", block_html="<div>{{< y >}} {{% z %}}</div>"),
                       StaticKeys({}))
    meta, body = front_matter(text)
    assert meta["title"] == "{{< x >}}"
    assert "{{<" not in body and "{{%" not in body and "{&#123;< y >}}" in body
    assert escape_shortcodes("{{{<") == "{{&#123;<"


def test_markdown_url_survives_commonmark() -> None:
    assert markdown_url("https://x.example/a b(c)") == "https://x.example/a%20b%28c%29"
    assert markdown_url("https://x.example/?a=1&copy=2") == "https://x.example/?a=1&copy=2"
    assert markdown_url("https://x.example/?a=1&amp;b") == "https://x.example/?a=1\\&amp;b"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_property_any_title_round_trips_through_yaml(title: str) -> None:
    meta, _ = front_matter(render_post(article(title=title), StaticKeys(SAMPLE_FRONT_MATTER)))
    assert meta["title"] == title
    assert isinstance(yaml.safe_load(yaml.safe_dump(meta)), dict)


_KEYS = st.text(min_size=1, max_size=8)
# What a post's front matter holds: strings, lists and mappings of them (other types, a
# static key's number, go through PyYAML's representer itself).
_VALUES = st.recursive(st.text(), lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(_KEYS, inner, max_size=3), max_leaves=8)


@given(st.dictionaries(_KEYS, _VALUES, max_size=5))
def test_property_front_matter_yaml_is_pyyamls_own(mapping: dict[str, object]) -> None:
    made = render._yaml(mapping)
    expected = yaml.dump(mapping, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True,
                         default_flow_style=False, width=1 << 20) if mapping else ""
    assert made == expected
    assert (yaml.safe_load(made) or {}) == mapping
