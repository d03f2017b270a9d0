from __future__ import annotations

import html
import re

import lxml.html
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.clean import ATTRIBUTES, ELEMENTS, URL_ATTRS, clean
from ingest.render import escape_shortcodes
from ingest.urls import safe_url

BLANK_LINE = re.compile(r"\n[ \t]*\n")


def text_of(fragment: str) -> str:
    if not fragment.strip():
        return ""
    return " ".join(lxml.html.fragment_fromstring(fragment, create_parent="div").text_content().split())


def pre_texts(fragment: str) -> list[str]:
    if not fragment.strip():
        return []
    root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    return [pre.text_content() for pre in root.iter("pre")]


def test_safe_input_keeps_its_bytes() -> None:
    source = ('<p>Sora新视频，变成“抖音独占”了。</p><p class="image-wrapper"><img src="https://img.'
              '36krcdn.com/a?x-oss-process=image/format,jpg/interlace,1"/></p><h2><strong>标题</strong>'
              '</h2><p class="editor-note">本文来自<a href="https://mp.weixin.qq.com/s/x" '
              'rel="noopener noreferrer nofollow" target="_blank">“量子位”</a>。</p>')
    assert clean(source).html == source


def test_serialization_matches_the_samples_round_trip() -> None:
    assert clean('<p>a<br>b<img src="x.png" alt=\'say "hi"\'></p>').html == \
        "<p>a<br/>b<img alt='say \"hi\"' src=\"x.png\"/></p>"
    assert clean("<p>&nbsp;&amp;&lt;&gt;&quot;</p>").html == '<p>\xa0&amp;&lt;&gt;"</p>'


@pytest.mark.parametrize(("source", "forbidden"), [
    ("<p onclick='x()'>a</p>", "onclick"),
    ("<script>alert(1)</script><p>a</p>", "alert"),
    ("<iframe src='https://evil.example'></iframe>", "iframe"),
    ("<object data='x.swf'></object><embed src='x.swf'>", "swf"),
    ("<form action='https://evil.example'><input name=q><button>go</button></form>", "evil"),
    ("<a href='javascript:alert(1)'>x</a>", "javascript"),
    ("<a href=' JaVa&#x09;ScRiPt:alert(1)'>x</a>", "alert"),
    ("<a href='vbscript:msgbox'>x</a>", "vbscript"),
    ("<img src='data:text/html;base64,PHNjcmlwdD4='>", "data:"),
    ("<svg><script>alert(1)</script><circle onload='x()'/></svg>", "alert"),
    ("<p style='background:url(javascript:x)'>a</p>", "javascript"),
    ("<math><maction actiontype='statusline'>x</maction></math>", "maction"),
    ("<meta http-equiv='refresh' content='0;url=https://evil.example'>", "evil"),
    ("<base href='https://evil.example/'>", "evil"),
    ("<style>body{display:none}</style>", "display"),
])
def test_nothing_executable_survives(source: str, forbidden: str) -> None:
    assert forbidden not in clean(source + "<p>kept</p>").html.lower()
    assert "kept" in clean(source + "<p>kept</p>").html


@pytest.mark.parametrize(("source", "expected"), [
    # <plaintext> would turn the rest of the page into raw text: it is read as markup.
    ("<p>a</p><plaintext><p>b</p></plaintext><p>c</p>", "<p>a</p><p>b</p><p>c</p>"),
    ("<p>a</p><PLAINTEXT><p>b &amp; c", "<p>a</p><p>b &amp; c</p>"),
    # <xmp> and <listing> show their text as is: <pre> does the same.
    ("<xmp><b>x</b></xmp><p>after</p>", "<pre>&lt;b&gt;x&lt;/b&gt;</pre><p>after</p>"),
    ("<listing>l\n\nx</listing><p>after</p>", "<pre>l\n&#10;x</pre><p>after</p>"),
    # A browser never shows these: neither does the post.
    ("<noembed><p>no plug-in</p></noembed><p>after</p>", "<p>after</p>"),
    ("<noframes>no frames</noframes><p>after</p>", "<p>after</p>"),
    ("<template><p>later</p></template><p>after</p>", "<p>after</p>"),
    # Elements outside the allowlist keep their text (MathML as feedparser reads it).
    ("<math><mi>a</mi><mo>+</mo><mi>b</mi><annotation>a+b</annotation></math> is all",
     "a+b is all"),
    ("<custom-card foo='1'><p>x</p></custom-card><marquee>y</marquee>", "<p>x</p>y"),
    ("<p trbidi='on' ping='https://t.example/' onmouseover='x()' data-id='7'>x</p>",
     '<p data-id="7">x</p>'),
    # No document at all, where lxml's fragment parser raises (feedparser's test suite has these).
    ("<!DOCTYPE html>", ""),
    ("<html></html>", ""),
    ("<!doctype html><p>x</p>", "<p>x</p>"),
    # Leading text that str.strip() empties is still text.
    ("\u3000\u3000<p>x</p>", "\u3000\u3000<p>x</p>"),
])
def test_the_allowlist(source: str, expected: str) -> None:
    assert clean(source).html == expected


def test_raster_data_images_survive_other_data_urls_do_not() -> None:
    assert 'src="data:image/png;base64,AAAA"' in clean('<img src="data:image/png;base64,AAAA">').html
    assert "data:" not in clean('<a href="data:image/png;base64,AAAA">x</a>').html


def test_relative_urls_become_absolute() -> None:
    out = clean('<a href="/p/1">a</a><img src="i.png" srcset="i.png 1x, /j.png 2x">',
                     "https://site.example/post/").html
    assert 'href="https://site.example/p/1"' in out
    assert 'src="https://site.example/post/i.png"' in out
    assert 'srcset="https://site.example/post/i.png 1x, https://site.example/j.png 2x"' in out


def test_blank_lines_dropped_outside_pre_and_encoded_inside() -> None:
    out = clean("\n\n<p>a</p>\n  \n\n<p>b\n\n c</p><pre>x\n\n\ny\n  \nz</pre>\n\n").html
    assert not BLANK_LINE.search(out)
    assert out == "<p>a</p>\n  <p>b\n c</p><pre>x\n&#10;\ny\n  &#10;z</pre>"
    assert pre_texts(out) == ["x\n\n\ny\n  \nz"]


def test_newlines_in_attributes_cannot_make_blank_lines() -> None:
    out = clean('<img alt="one\n\ntwo" src="a.png">').html
    assert not BLANK_LINE.search(out) and "one&#10;&#10;two" in out


def test_noscript_fallback_kept_only_when_new() -> None:
    lazy = '<img data-src="https://x/a.jpg"><noscript><img src="https://x/a.jpg"></noscript>'
    assert clean(lazy).html.count("a.jpg") == 1
    assert "b.jpg" in clean('<noscript><img src="https://x/b.jpg"></noscript>').html


def test_office_namespaced_tags_keep_their_text() -> None:
    assert clean("<p>in <st1:place>Paris</st1:place><o:p>&nbsp;</o:p></p>").html == "<p>in Paris\xa0</p>"


def test_nesting_deeper_than_libxml2_allows_keeps_the_text() -> None:
    deep = "<div>" * 5000 + "deep text" + "</div>" * 5000 + "<p>after &amp; more</p>"
    out = clean(deep).html
    assert text_of(out) == "deep text after & more"


def test_safe_url_rejects_obfuscated_schemes() -> None:
    assert safe_url("\x00java\nscript:alert(1)", None) is None
    assert safe_url("mailto:a@b.example", None) == "mailto:a@b.example"
    assert safe_url("#section", "https://x.example/") == "#section"


# --- properties ---------------------------------------------------------------------------

TEXT = st.text(alphabet=st.sampled_from(list("ab 中文\n\t{}<%>&_*#`'\"-=[]()!.\xa0")), max_size=40)
INLINE = ("strong", "em", "span", "a", "code")
BLOCK = ("p", "div", "blockquote", "li", "h2")


def element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def wrap(tag: str, inner: list[str]) -> str:
        return f"<{tag}>{''.join(inner)}</{tag}>"

    return st.one_of(
        st.builds(wrap, st.sampled_from(INLINE + BLOCK), st.lists(children, max_size=4)),
        st.builds(lambda t: f"<pre>{html.escape(t, quote=False)}</pre>", TEXT),
    )


FRAGMENT = st.lists(
    st.recursive(TEXT.map(lambda t: html.escape(t, quote=False)), element, max_leaves=12),
    max_size=6,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(FRAGMENT)
def test_property_text_preserved(source: str) -> None:
    out = clean(source).html
    assert text_of(out) == text_of(source)
    assert pre_texts(out) == pre_texts(source)


@settings(max_examples=300, deadline=None)
@given(FRAGMENT)
def test_property_never_a_blank_line_and_idempotent(source: str) -> None:
    out = clean(source).html
    assert not BLANK_LINE.search(out)
    assert clean(out).html == out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*"<>/=\"' \n\tab{}%&;:", "script", "onload", "javascript:", "iframe",
                                 "pre", "p", "svg", "img src", "<!--", "-->"]),
    max_size=60).map("".join))
def test_property_hostile_soup_is_safe(source: str) -> None:
    out = clean(source).html
    assert not BLANK_LINE.search(out)
    parsed = lxml.html.fragment_fromstring(out, create_parent="div") if out.strip() else None
    if parsed is not None:
        assert not list(parsed.iter("script", "iframe", "svg"))
        for el in parsed.iter():
            assert not any(name.lower().startswith("on") for name in el.attrib)
            assert not any("javascript:" in v.replace(" ", "").lower() for v in el.attrib.values())


@settings(max_examples=200, deadline=None)
@given(FRAGMENT)
def test_property_no_shortcode_opener_after_escaping(source: str) -> None:
    out = escape_shortcodes(clean(source).html)
    assert "{{<" not in out and "{{%" not in out
    assert text_of(out) == text_of(clean(source).html)


SOUP = st.lists(st.sampled_from([
    *"<>/=\"' \n\tab{}%&;:", "{{<", "{{%", "plaintext", "xmp", "listing", "noembed", "noframes",
    "template", "math", "svg", "object", "custom-x", "pre", "p", "a href=", "img src=", "onerror=",
    "style=", "formaction=", "srcdoc=", "javascript:", "data:text/html,", "http://x/", "<!--", "-->",
    "<![CDATA[", "]]>", "\n\n", "<!DOCTYPE html>", "<html>", "</html>", "<body>", "\xa0", "\u3000",
]), max_size=80).map("".join)


@settings(max_examples=400, deadline=None)
@given(SOUP)
def test_property_only_allowed_elements_attributes_and_schemes(source: str) -> None:
    out = clean(source, "https://site.example/a/").html
    assert not BLANK_LINE.search(out)
    escaped = escape_shortcodes(out)
    assert "{{<" not in escaped and "{{%" not in escaped
    if not out.strip():
        return
    for element in lxml.html.fragment_fromstring(out, create_parent="div").iter():
        assert isinstance(element.tag, str) and element.tag in ELEMENTS | {"div"}, element.tag
        for name, value in element.attrib.items():
            assert name in ATTRIBUTES or name.startswith(("data-", "aria-")), name
            if name in URL_ATTRS or name == "srcset":
                assert re.match(r"(https?:|#|data:image/|mailto:)", value.strip()), (name, value)
