from __future__ import annotations

from datetime import UTC, datetime

import lxml.html
import pytest

from ingest import sniff
from ingest.article import is_summary
from ingest.clean import clean
from ingest.errors import ExtractError
from ingest.extract import extract_generic
from ingest.sources import kr36
from tests.conftest import CORPUS, DATA, needs_shared

PAGES = DATA / "pages"
BASE = "http://127.0.0.1:8"


def page(name: str) -> str:
    return (PAGES / name).read_text(encoding="utf-8").replace("{{BASE}}", BASE)


def text(html: str) -> str:
    return " ".join(lxml.html.fragment_fromstring(html, create_parent="div").text_content().split())


def test_36kr_page_state_gives_the_article() -> None:
    found = kr36.extract_page(page("36kr-state.html"), f"{BASE}/p/3200000000000001")
    assert found.title == "旧仓库里的共享厨房" and found.author == "测试作者"
    assert found.published == datetime(2026, 3, 26, 2, 0, tzinfo=UTC)
    assert found.cover == f"{BASE}/img/v2_cover@000000_img_000"
    assert found.html.startswith("<p>城东的旧仓库") and 'class="editor-note"' in found.html


def test_36kr_encrypted_state_falls_back_to_the_rendered_article() -> None:
    found = kr36.extract_page(page("36kr-encrypted.html"), f"{BASE}/p/3200000000000001")
    assert found.title == "旧仓库里的共享厨房"
    assert text(found.html) == text(kr36.extract_page(page("36kr-state.html"), "x").html)
    assert "相关文章" not in found.html and "快讯" not in found.html


@pytest.mark.parametrize("name", ["36kr-no-article.html"])
def test_36kr_page_without_article(name: str) -> None:
    with pytest.raises(kr36.NoArticle):
        kr36.extract_page(page(name), "x")
    with pytest.raises(kr36.NoArticle):
        kr36.extract_page("", "x")


def test_36kr_ids_and_newsflashes() -> None:
    assert kr36.page_url("123", "https://36kr.com/") == "https://36kr.com/p/123"
    assert kr36.is_newsflash("https://36kr.com/newsflashes/3000000000000001")
    assert not kr36.is_newsflash("https://36kr.com/p/3000000000000001")


def test_generic_page_keeps_the_article_and_drops_the_chrome() -> None:
    found = extract_generic(page("generic-article.html"), f"{BASE}/blog/build-time")
    cleaned = clean(found.html, found.url).html
    body = text(cleaned)
    assert found.title == "How we cut our build time in half"
    assert found.published == datetime(2024, 5, 2, 6, 30, tzinfo=UTC)
    assert found.cover == f"{BASE}/img/cover.png"
    for kept in ("24 minutes per commit", "Where the time went", "Building the documentation twice",
                 "make deps-cached test-sharded docs", "40 s", "engineers push smaller changes again"):
        assert kept in body
    for dropped in ("Tweet", "Careers", "Taming flaky tests", "Sign up", "Privacy", "analytics"):
        assert dropped not in body
    assert f'src="{BASE}/img/chart.png"' in cleaned and "ads.example" not in cleaned
    assert 'href="https://example.org/lockfiles"' in cleaned  # tracking parameters stripped
    assert "<pre><code># before\nmake deps test docs docs\n&#10;# after" in cleaned


def test_generic_page_without_text_is_an_extract_error() -> None:
    with pytest.raises(ExtractError):
        extract_generic("", "https://x.example/")


@pytest.mark.parametrize(("html", "summary"), [
    ("", True),
    ("<p>36氪获悉，某物流公司今日宣布完成新一轮融资。</p>", True),
    ("<p>" + "A long paragraph about trains. " * 20 + "Read more</p>", True),
    ("<p>" + "这是一段很长的文字。" * 40 + "…</p>", True),
    ("<p>" + "A medium paragraph of text. " * 20 + "</p>", True),
    ("<p>" + "A medium paragraph of text. " * 20 + "</p><p><img src='a.png'></p>", False),
    ("".join(f"<p>Paragraph {i} of a real article, with enough words to read.</p>" for i in range(6)),
     False),
    ("<p>" + "这是完整的文章。" * 40 + "</p><p>第二段。</p><p>第三段。</p>", False),
    ("<p>" + "这是一篇短文章。" * 20 + "</p>", True),
])
def test_summary_rule(html: str, summary: bool) -> None:
    assert is_summary(html) is summary


def test_decode_html_utf8_declared_and_guessed() -> None:
    text = "腾讯网 新闻 鎔"
    assert sniff.decode_html(text.encode("utf-8")) == text
    gbk = f'<meta charset="gb2312"><p>{text}</p>'.encode("gbk")  # 鎔 is GBK, not GB2312
    assert text in sniff.decode_html(gbk)
    assert sniff.decode_html("café".encode("latin-1"), "text/html; charset=ISO-8859-1") == "café"
    assert "Coração" in sniff.decode_html("<p>Coração e ação na praça</p>".encode("cp1252") * 20)


@needs_shared
def test_corpus_gb2312_page_decodes() -> None:
    body = (CORPUS / "other" / "jianglibo-resp-me-templates" / "qq.com.gb2312.html").read_bytes()
    html = sniff.decode_html(body, "text/html")
    assert "腾讯" in html and "\ufffd" not in html
    assert sniff.html_title(body) is not None and "腾讯" in (sniff.html_title(body) or "")


@needs_shared
def test_generic_extraction_keeps_corpus_articles_whole_in_any_chrome() -> None:
    from bench.extractors import corpus_articles, features, kept, words
    from tests.sitechrome import CHROME_TEXT, STYLES
    from tests.sitechrome import page as site_page

    articles = corpus_articles()[::7]
    recalls, images = [], []
    for title, url, article in articles:
        for style in range(STYLES):
            out = clean(extract_generic(site_page(title, article, style), url).html, url).html
            recalls.append(kept(words(article), words(out)) or 0.0)
            image = kept(features(article)["images"], features(out)["images"])
            if image is not None:
                images.append(image)
            if style < 4:  # only generated class names may let chrome through
                assert not [c for c in CHROME_TEXT if c in out and c not in article], (title, style)
    assert min(recalls) > 0.9 and sum(recalls) / len(recalls) > 0.99
    assert sum(images) / len(images) > 0.98


STORY = [
    "The harbour authority opened the new ferry terminal on Monday after three years of building work.",
    "Commuters who used to wait in the rain now have a hall with seats, screens and a small cafe inside.",
    "The operator says crossings will run every twenty minutes at peak times, twice as often as before.",
    "Local shops near the old pier worry that fewer people will walk past their windows each morning.",
    "The city council promised a market on the old pier next spring to keep the street busy and lively.",
    "Engineers had to rebuild the sea wall first, which took longer than planned after two winter storms.",
]


def test_what_surrounds_a_story_goes_and_the_story_stays() -> None:
    paragraphs = "".join(f"<p>{text}</p>" for text in STORY)
    page = f"""<html><head><title>Ferry terminal opens</title></head><body>
    <div class="page"><div class="main">
      <div class="article-kicker">Transport</div>
      <h1>Ferry terminal opens after three years</h1>
      <div class="byline">By <a href="/staff/jo">Jo Smith</a>, Harbour reporter</div>
      <div class="article-date">Updated 12 March 2026, 09:30</div>
      <div class="counts"><a href="/share/fb">Share 1.2k</a> <a href="/share/x">Post 340</a></div>
      {paragraphs[:len(paragraphs) // 2]}
      <ul><li><a href="/a">Route map</a></li><li><a href="/b">Timetable</a></li></ul>
      <table><tr><td>Weekdays</td><td>every 20 minutes</td></tr></table>
      <div class="social-embed"><blockquote class="twitter-tweet">
        <p>Queues already at the new terminal this morning</p>
        <a href="https://twitter.com/x/status/1">March 12, 2026</a></blockquote></div>
      <figure><img src="/terminal.jpg" alt="The new hall">
        <figcaption>The new hall. Photo: Harbour Authority</figcaption></figure>
      {paragraphs[len(paragraphs) // 2:]}
      <div class="k2"><img src="/pier.jpg"><span>The old pier at dawn, by A. Lens</span></div>
      <div class="x9f"><h3>More from Harbour</h3><ul><li><a href="/1">Tide tables for April</a></li>
        <li><a href="/2">A new lighthouse keeper</a></li><li><a href="/3">Boat show dates</a></li></ul></div>
      <div class="paywall">Subscribe to keep reading our harbour coverage, from 1 euro a month.</div>
      <div class="support-box"><img src="/qr.png"><p>Keep the newsroom going</p><a href="/give">Give</a></div>
      <div class="comments">12 comments. Log in to join the conversation.</div>
    </div></div></body></html>"""
    out = clean(extract_generic(page, "https://news.example/ferry").html, "https://news.example/ferry").html
    for text in [*STORY, "Route map", "Timetable", "every 20 minutes", "Queues already at the new terminal"]:
        assert text in out
    assert 'src="https://news.example/terminal.jpg"' in out and 'src="https://news.example/pier.jpg"' in out
    for chrome in ("Transport", "Jo Smith", "Updated 12 March", "Share 1.2k", "Subscribe to", "comments",
                   "Photo: Harbour", "A. Lens", "More from Harbour", "Tide tables", "newsroom", "qr.png"):
        assert chrome not in out, chrome


def test_what_the_page_hides_or_says_again_and_again_goes() -> None:
    paragraphs = "".join(f"<p>{text}</p>" for text in STORY)
    slides = "".join(f'<div class="slide"><img src="/s{i}.jpg"></div>'
                     f'<div class="slideTitle">Harbour in pictures</div><div class="slideNav">{i}</div>'
                     for i in range(1, 5))
    page = f"""<html><body><div class="story">
      <h1>Ferry terminal opens after three years</h1>
      {paragraphs[:len(paragraphs) // 2]}
      <div class="gallery">{slides}</div>
      <div class="login-box" style="display: none">Only members may save this article to read later.</div>
      <p hidden>Log in to keep reading.</p>
      <span class="sr-only">Image caption</span>
      <div class="articleRegist">This article is for members. Register to read the rest of it.</div>
      {paragraphs[len(paragraphs) // 2:]}
      <ul><li><strong>Crossings</strong>: every 20 minutes</li>
        <li><strong>Crossings</strong>: hourly at night</li>
        <li><strong>Crossings</strong>: none on 25 December</li></ul>
      <h3>Fares</h3><p>Adults pay two euros.</p><h3>Fares</h3><p>Children ride free.</p><h3>Fares</h3>
      <p>Bicycles pay one euro.</p>
      <div class="c_sharebar"><a href="#">Print</a> <a href="#">Email</a></div>
      <div class="support-pay"><img src="/qr.png"><div>เท่าไรก็ได้ การสนับสนุนจากคุณ คือการร่วมสร้างและรักษาสื่อเสรี
        ร่วมสนับสนุนเรา โอนเงิน พร้อมเพย์ มูลนิธิสื่อเพื่อการศึกษาของชุมชน</div></div>
    </div></body></html>"""
    out = clean(extract_generic(page, "https://news.example/ferry").html, "https://news.example/ferry").html
    for kept in [*STORY, "every 20 minutes", "hourly at night", "none on 25 December", "Adults pay",
                 "Children ride free", "Bicycles pay"]:
        assert kept in out, kept
    assert out.count("Crossings") == 3 and out.count("Fares") == 3  # a story's own labels and headings
    assert out.count("Harbour in pictures") == 1 and all(f"/s{i}.jpg" in out for i in range(1, 5))
    for gone in ("members", "Log in", "Image caption", "Register", "Print", "Email", "qr.png", "เท่าไรก็ได้",
                 '<div class="slideNav">'):
        assert gone not in out, gone


def test_what_a_script_would_show_of_the_article_stays() -> None:
    paragraphs = [f"<p>{text}</p>" for text in STORY]
    whole = (f'<html><body><div id="app" style="display:none"><article>{"".join(paragraphs)}</article>'
             "</div></body></html>")
    rest = (f'<html><body><article>{"".join(paragraphs[:3])}'
            f'<div class="more" hidden>{"".join(paragraphs[3:])}</div><button>Read more</button>'
            '<div style="display: none">Log in to save this article.</div></article></body></html>')
    for page in (whole, rest):
        out = extract_generic(page, "https://news.example/ferry").html
        assert all(text in out for text in STORY) and "Log in" not in out
