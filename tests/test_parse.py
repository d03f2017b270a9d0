from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingest.clean import clean
from ingest.errors import BlockedError, NotAFeedError, ParseError
from ingest.parse import entry_key, parse_feed, parse_loose_date
from tests.conftest import DATA

FEEDS = DATA / "feeds"


def parse(name: str, url: str = "https://feeds.example/feed") -> list:  # type: ignore[type-arg]
    return list(parse_feed((FEEDS / name).read_bytes(), url).entries)


def test_official_36kr_feed_two_space_dates_and_rss_links() -> None:
    first, second = parse("36kr-official.xml")
    assert first.key == "36kr:3001000000000001"  # ?f=rss does not change the identity
    assert first.link == "https://36kr.com/p/3001000000000001?f=rss"
    assert first.published == datetime(2026, 3, 26, 2, 0, tzinfo=UTC)  # 10:00 +0800
    assert second.published == datetime(2026, 3, 25, 15, 30, tzinfo=UTC)
    assert first.title == "城市里的自动驾驶小巴：一条线路的三个月"
    assert first.author == "测试作者"
    assert first.content.startswith("<p>早上七点") and 'class="editor-note"' in first.content


def test_rss_gpt_feed_takes_the_longest_content_and_skips_literal_none() -> None:
    entries = parse("rss-gpt.xml")
    assert [e.published for e in entries][:2] == [
        datetime(2023, 11, 10, 0, 10, 19, tzinfo=UTC), datetime(2023, 11, 9, 11, 33, 36, tzinfo=UTC)]
    assert entries[1].content.lstrip().startswith("<div> 小游戏, 引擎, 渠道")
    assert "None" not in entries[2].content[:20] and "这一篇的生成器没有写摘要" in entries[2].content


def test_newsflashes_without_link_or_guid_get_distinct_stable_keys() -> None:
    entries = parse("newsflash.xml")
    keys = [e.key for e in entries]
    assert all(k.startswith("sha256:") for k in keys) and len(set(keys)) == 2
    assert keys == [e.key for e in parse("newsflash.xml", url="https://elsewhere.example/x")]
    assert all(e.link is None for e in entries)


def test_2016_feed_cdata_date_and_html_links() -> None:
    (entry,) = parse("official-2016.xml")
    assert entry.key == "36kr:5055001"
    assert entry.published == datetime(2016, 10, 26, 8, 53, 42, tzinfo=UTC)


def test_entity_escaped_html_becomes_html() -> None:
    (entry,) = parse("entity-escaped.xml")
    assert entry.content.startswith('<p class="fr-tag"><img alt="Image title"')
    assert "渠道建设 &amp; 研发" in entry.content


def test_double_escaped_cdata_is_unwrapped() -> None:
    (entry,) = parse("double-cdata.xml")
    assert "CDATA" not in entry.content
    assert "<p>品牌方今年的一个明显变化" in entry.content


def test_empty_channel_has_no_entries() -> None:
    assert parse("empty.xml") == []


def test_atom_relative_links_text_content_and_missing_fields() -> None:
    first, second, third = parse("atom.xml")
    assert first.link == "https://example.org/project/releases/tag/v2.0.0"
    assert first.title == 'v2.0.0 "Quotes" & ampersands'
    assert first.published is None and first.updated == datetime(2021, 6, 1, 21, 49, 41, tzinfo=UTC)
    assert "# not a heading\n\n$ make install" in first.content
    assert second.title == "v1.9.0 <b> is text here"
    assert "&lt;tag&gt;" in second.content  # plain text stays text
    assert third.title == "untitled" and third.key.startswith("sha256:")


def test_rss1_and_rss092_latin1() -> None:
    (rdf,) = parse("rss1.xml")
    assert rdf.updated == datetime(2017, 6, 15, 17, 29, 47, tzinfo=UTC)
    (old,) = parse("rss092-latin1.xml")
    assert old.title == "Coração da cidade ganha praça nova"
    assert old.published is None and old.updated is None


def test_latin1_without_declaration_and_portuguese_dates() -> None:
    (entry,) = parse("latin1-undeclared.xml")
    assert entry.title == "Eleições: pesquisa mostra empate"
    assert entry.published == datetime(2018, 9, 24, 22, 42, 40, tzinfo=UTC)


def test_gb2312_feed_decodes() -> None:
    (entry,) = parse("gb2312.xml")
    assert entry.title == "国产操作系统发布新版本"


@pytest.mark.parametrize("name", ["captcha.html", "security-check.html"])
def test_bot_walls_are_blocked_errors_never_entries(name: str) -> None:
    with pytest.raises(BlockedError, match="bot wall"):
        parse(name)


def test_html_page_is_not_a_feed() -> None:
    with pytest.raises(NotAFeedError, match="Document Moved"):
        parse("moved.html")


@pytest.mark.parametrize("body", [
    b"",
    b'{"items": []}',
    b"<rss version='2.0'><channel><item><title>cut short",
    b"<rss version='2.0'><channel><item><title>a & b</title></item></channel></rss>",
])
def test_not_a_feed_or_malformed_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_feed(body, "https://feeds.example/feed")


def test_leading_newline_before_xml_declaration_is_tolerated() -> None:
    body = b"\n" + (FEEDS / "empty.xml").read_bytes()
    assert parse_feed(body, "https://feeds.example/feed").entries == ()


def test_entity_declarations_are_never_expanded() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<rss version="2.0"><channel><item><title>t &b; &x;</title><guid>g</guid>'
            b"</item></channel></rss>")
    (entry,) = parse_feed(bomb, "https://feeds.example/feed").entries
    assert "aaaa" not in entry.title and "root:" not in entry.title


def test_entry_key_prefers_36kr_ids_in_any_url_form() -> None:
    forms = ["https://36kr.com/p/123456", "https://www.36kr.com/p/123456?f=rss",
             "https://m.36kr.com/p/123456", "https://eu.36kr.com/zh/p/123456",
             "http://36kr.com/p/123456.html?ktm_source=feed"]
    assert {entry_key("", link, "t", None) for link in forms} == {"36kr:123456"}
    assert entry_key("tag:x,2020:1", "https://x.example/1", "t", None) == "tag:x,2020:1"
    assert entry_key("", "https://x.example/1", "t", None) == "https://x.example/1"


@pytest.mark.parametrize(("text", "expected"), [
    ("Seg, 24 Set 2018 19:42:40 -0300", datetime(2018, 9, 24, 22, 42, 40, tzinfo=UTC)),
    ("3 déc 2019 08:00 +0100", datetime(2019, 12, 3, 7, 0, tzinfo=UTC)),
    ("Mi, 12 Okt 2022 10:00:00", datetime(2022, 10, 12, 10, 0, tzinfo=UTC)),
    ("yesterday", None),
    ("31 Fev 2020 10:00", None),
])
def test_loose_dates(text: str, expected: datetime | None) -> None:
    assert parse_loose_date(text) == expected


@pytest.mark.parametrize("date", [
    "Fri, 31 Dec 9999 23:59:59 -1200",  # past the last year a datetime holds
    "Mon, 01 Jan 0001 00:00:00 +0100",  # before the first
    "31 déc 9999 23:59 -1200",  # the same, in a localized form feedparser leaves to us
    "Thu, 01 Jan 1970 00:00:00 GMT",  # the epoch: a feed's "no date"
])
def test_a_date_out_of_range_falls_back_to_updated_and_spares_the_other_entries(date: str) -> None:
    feed = ('<rss version="2.0"><channel><title>t</title>'
            f"<item><title>bad</title><link>http://x.example/a</link><pubDate>{date}</pubDate></item>"
            '<item xmlns:atom="http://www.w3.org/2005/Atom"><title>bad, updated</title>'
            f"<link>http://x.example/b</link><pubDate>{date}</pubDate>"
            "<atom:updated>2024-02-21T05:47:03Z</atom:updated></item>"
            "<item><title>good</title><link>http://x.example/c</link>"
            "<pubDate>Wed, 21 Feb 2024 05:47:03 GMT</pubDate></item></channel></rss>").encode()
    bad, updated, good = parse_feed(feed, "http://x.example/feed").entries
    assert (bad.published, bad.updated) == (None, None)  # dated when first seen
    assert updated.published is None and updated.updated == datetime(2024, 2, 21, 5, 47, 3, tzinfo=UTC)
    assert good.published == datetime(2024, 2, 21, 5, 47, 3, tzinfo=UTC)


def test_a_doctype_quoted_in_a_comment_does_not_shield_the_real_one() -> None:
    bomb = (b'<?xml version="1.0"?><!-- <!DOCTYPE decoy> --><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
            + b"".join(b"<!ENTITY %c \"" % (98 + i) + b"&%c;" % (97 + i) * 10 + b'">' for i in range(8))
            + b']><rss version="2.0"><channel><item><title>t &i;</title><guid>g</guid>'
              b"<description><![CDATA[<pre><!DOCTYPE html> quoted</pre>]]></description>"
              b"</item></channel></rss>")
    (entry,) = parse_feed(bomb, "https://feeds.example/feed").entries
    assert "aaaa" not in entry.title and "<!DOCTYPE html> quoted" in entry.content


def test_a_doctype_quoted_in_content_is_content() -> None:
    feed = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>x</title>'
            b"<guid>g</guid><description><![CDATA[<!DOCTYPE ]]></description></item></channel></rss>")
    (entry,) = parse_feed(feed, "https://feeds.example/feed").entries
    assert entry.content.strip() == "<!DOCTYPE"


@pytest.mark.parametrize("title", [
    '<title type="html">&lt;script&gt;alert(1)&lt;/script&gt;Hello &lt;b&gt;world&lt;/b&gt;</title>',
    "<title>&lt;script type='text/javascript'&gt;alert(1)&lt;/script&gt;Hello world</title>",
    '<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><style>p{}</style>'
    "Hello world</div></title>",
])
def test_titles_keep_no_script_or_style_source(title: str) -> None:
    feed = ('<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry><id>tag:x,2024:1</id>'
            f'{title}<link href="https://x.example/1"/><content type="html">body</content></entry></feed>')
    (entry,) = parse_feed(feed.encode(), "https://feeds.example/feed").entries
    assert entry.title == "Hello world"


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
@pytest.mark.parametrize("content_type", ["text/xml", "application/xml", "text/xml; charset=utf-8"])
def test_a_byte_order_mark_decides_the_encoding(codec: str, content_type: str) -> None:
    text = ('<?xml version="1.0" encoding="utf-16"?><rss version="2.0"><channel><title>t</title>'
            "<item><title>标题</title><guid>g</guid><description>正文</description></item></channel></rss>")
    body = text.encode(codec) if codec != "utf-16-be" else b"\xfe\xff" + text.encode(codec)
    (entry,) = parse_feed(body, "https://feeds.example/feed", content_type).entries
    assert (entry.title, entry.content) == ("标题", "正文")


def test_a_byte_order_mark_that_lies_is_named() -> None:
    with pytest.raises(ParseError, match="UTF-16 byte-order mark but is not UTF-16"):
        parse_feed(b"\xff\xfe<\x00r\x00\x00\xd8", "https://feeds.example/feed", "text/xml")


def test_mathml_in_content_keeps_its_text() -> None:
    feed = ('<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry><id>tag:x,2024:1</id>'
            '<title>m</title><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
            '<math xmlns="http://www.w3.org/1998/Math/MathML"><mi>a</mi><mo>+</mo><mi>b</mi></math>'
            "</div></content></entry></feed>")
    (entry,) = parse_feed(feed.encode(), "https://feeds.example/feed").entries
    assert clean(entry.content).html == "a+b"
