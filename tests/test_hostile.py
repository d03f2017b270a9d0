"""Hostile input: nothing executable reaches a post, nothing escapes the archive, nothing explodes."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import lxml.html
import pytest

from ingest import verify
from tests import feedgen
from tests.conftest import DATA, Project, front_matter, needs_hugo
from tests.loopback import Loopback

HOSTILE = (DATA / "feeds" / "hostile.xml").read_bytes()


def article_elements(body: str) -> lxml.html.HtmlElement:
    html = body.split("[原文]")[0]
    return lxml.html.fragment_fromstring(html, create_parent="div")


def test_nothing_executable_reaches_a_post(project: Project, server: Loopback) -> None:
    server.route("/feed", HOSTILE)
    project.configure([{"name": "hostile", "url": server.url("/feed")}])
    code, out = project.run()
    assert code == 0, out
    posts = project.posts()
    assert len(posts) == 3
    for text in posts.values():
        _, body = front_matter(text)
        root = article_elements(body)
        assert not list(root.iter("script", "iframe", "object", "embed", "form", "input", "button",
                                  "svg", "math", "base", "meta", "style"))
        for element in root.iter():
            assert not [a for a in element.attrib if a.lower().startswith("on") or a == "formaction"]
            for value in element.attrib.values():
                squashed = re.sub(r"\s", "", value).lower()
                assert not squashed.startswith(("javascript:", "vbscript:", "data:text", "data:image/svg"))
                assert "javascript:" not in squashed
        assert "alert(" not in body and "aaaaaaaaaa" not in text and "root:" not in text


def test_titles_stay_titles_and_paths_stay_in_the_archive(project: Project, server: Loopback) -> None:
    server.route("/feed", HOSTILE)
    project.configure([{"name": "hostile", "url": server.url("/feed")}])
    project.run()
    archive = project.archive.resolve()
    files = [p for p in project.root.rglob("*") if p.is_file()]
    inside = (archive, project.state_dir.resolve(), (project.root / "sources").resolve())
    assert all(any(p.resolve().is_relative_to(folder) for folder in inside) or p == project.config
               for p in files)
    titles = sorted(front_matter(t)[0]["title"] for t in project.posts().values())
    assert titles == sorted([
        "--- title: injected draft: true ---",
        "../../../../etc/passwd \u202etxt.exe NUL:",
        "'quotes' \"double\" : colon # hash & {{< shortcode >}} [link](x) *star* @at `tick` | pipe > gt",
    ])
    assert all(front_matter(t)[0]["draft"] is False for t in project.posts().values())


@needs_hugo
def test_hostile_posts_render_intact(project: Project, server: Loopback) -> None:
    server.route("/feed", HOSTILE)
    project.configure([{"name": "hostile", "url": server.url("/feed")}])
    project.run()
    assert verify.verify(project.archive, hugo=True) == []


@needs_hugo
def test_verify_finds_no_false_problem_in_a_huge_title_or_shortcode_like_link_text(
        project: Project, server: Loopback, tmp_path: Path) -> None:
    body = ("<p>一段足够长的正文，讲的是城市和科技，足以独立成篇。</p>" * 3
            + '<p><a href="https://x.example/">see {{&lt; x &gt;}} and {{% y %}}</a></p>'
            + '<h2 id="part">Part</h2><p>quoting markup: &lt;a href="/r/x"&gt;</p>')
    server.route("/feed", ('<rss version="2.0"><channel><title>t</title><item>'
                           f"<title>{'长' * 10_000}</title><link>https://x.example/1</link>"
                           "<pubDate>Wed, 21 Feb 2024 05:47:03 GMT</pubDate>"
                           f"<description><![CDATA[{body}]]></description></item></channel></rss>").encode())
    project.configure([{"name": "t", "url": server.url("/feed")}])
    assert project.run()[0] == 0
    assert verify.verify(project.archive, hugo=True) == []
    # A theme that decorates headings, as PaperMod does: hidden from readers, not a difference.
    site = tmp_path / "site"
    (site / "layouts" / "_default").mkdir(parents=True)
    (site / "hugo.toml").write_text('[markup.goldmark.renderer]\nunsafe = true\n')
    (site / "layouts" / "_default" / "list.html").write_text("<html><body>{{ .Title }}</body></html>")
    (site / "layouts" / "_default" / "single.html").write_text(
        '<html><body><main><h1>{{ .Title }}</h1>'
        '{{ .Content | replaceRE "(<h[1-6] id=\\"([^\\"]+)\\".+)(</h[1-6]+>)"'
        ' "${1}<a hidden class=\\"anchor\\" aria-hidden=\\"true\\" href=\\"#${2}\\">#</a>${3}" | safeHTML }}'
        "</main></body></html>")
    assert verify.verify(project.archive, hugo=True, site=site) == []


@pytest.mark.parametrize(("route", "message"), [
    ({"body": b"<rss>" + b"x" * 3_000_000 + b"</rss>"}, "exceeds the cap"),
    ({"body": gzip.compress(b"<rss>" + b" " * 50_000_000 + b"</rss>"), "gzip": False,
      "headers": {"Content-Encoding": "gzip"}}, "exceeds the cap"),
], ids=["huge-body", "gzip-bomb"])
def test_oversized_bodies_are_refused(project: Project, server: Loopback, route: dict[str, object],
                                      message: str) -> None:
    server.route("/feed", **route)  # type: ignore[arg-type]
    project.configure([{"name": "big", "url": server.url("/feed")}], http={"max_feed_bytes": 2_000_000})
    code, out = project.run()
    assert code == 1 and message in out


def test_a_10000_item_feed_is_archived_once_each(project: Project, server: Loopback) -> None:
    server.route("/feed", feedgen.feed(10_000, article_bytes=200), etag='"big"')
    project.configure([{"name": "big", "url": server.url("/feed")}], summary="none")
    code, out = project.run()
    assert code == 0 and "10000 new" in out
    assert len(list(project.archive.glob("*/*/*/*/index.md"))) == 10_000
    code, out = project.run()
    assert code == 0 and "not-modified" in out
