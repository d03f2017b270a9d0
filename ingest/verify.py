"""Does every post render intact? Static checks, and a real Hugo build.

Without Hugo, each post is checked for what breaks rendering: front matter
that does not parse, a blank line inside the article's HTML block, a raw
shortcode opener, a 原文 block that is not a Markdown link, a local image
that is missing.

With Hugo (``ingest verify --hugo``), the archive is built and every page's
content is compared with the post's own HTML, parsed the same way: the same
text (whitespace-normalized), the same elements in the same order, every
``<pre>`` byte for byte, 原文 an ``<a>`` to the source, every image found. Any
Markdown re-interpretation (a ``#`` line becoming ``<h1>``, ``_x_`` becoming
``<em>``, smart quotes, a swallowed shortcode) shows up as a difference.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import cast
from urllib.parse import unquote, urlsplit

import lxml.html
import yaml

from ingest.archive import split_front_matter
from ingest.clean import visible_text
from ingest.errors import IngestError
from ingest.render import split_body

REQUIRED_KEYS = ("title", "categories", "date", "lastmod")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_SHORTCODE = re.compile(r"\{\{[<%]")
_ANCHOR = 40  # characters of the article's text that locate it in a themed page


@dataclass(frozen=True, slots=True)
class Problem:
    post: str
    message: str

    def __str__(self) -> str:
        return f"{self.post}: {self.message}"


def posts(archive_dir: Path) -> Iterator[Path]:
    return iter(sorted(archive_dir.glob("*/*/*/*/index.md")))


def check_post(path: Path) -> list[str]:
    """What is wrong with one post, judged from its file alone."""
    try:
        meta, body = split_front_matter(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        return [f"unreadable: {exc}"]
    problems = [f"front matter lacks {key!r}" for key in REQUIRED_KEYS if key not in meta]
    article, link = split_body(body)
    if not article.startswith("<div>\n\n<div") or not article.endswith("\n</div>\n"):
        problems.append("body is not the sample's <div> block")
    elif _BLANK_LINE.search(article[len("<div>\n\n"):]):
        problems.append("blank line inside the article's HTML block: Markdown would take over")
    if _SHORTCODE.search(body):
        problems.append("raw Hugo shortcode opener in the body")
    if link is None and "原文" in body[len(article):]:
        problems.append("原文 block is not a Markdown link")
    for src in _local_images(article):
        if not (path.parent / src).is_file():
            problems.append(f"image {src} is missing")
    return problems


def _local_images(html: str) -> list[str]:
    sources = re.findall(r"<img[^>]*?\ssrc=\"([^\"]+)\"", html)
    return [unquote(s) for s in sources if not urlsplit(s).scheme and not s.startswith("/")]


def verify(archive_dir: Path, *, hugo: bool = False, site: Path | None = None) -> list[Problem]:
    found = [Problem(_rel(p, archive_dir), m) for p in posts(archive_dir) for m in check_post(p)]
    if hugo:
        found += compare_with_hugo(archive_dir, site)
    return found


# Hugo's permalinks are read from `hugo list all` and the pages found under
# them, so any theme and any permalink scheme work: this base URL only makes
# the permalinks' paths predictable.
_BASE_URL = "http://ingest.invalid/"


def compare_with_hugo(archive_dir: Path, site: Path | None = None) -> list[Problem]:
    with tempfile.TemporaryDirectory(prefix="ingest-verify-") as tmp:
        out = Path(tmp) / "public"
        pages = build_site(archive_dir, out, site)
        problems = []
        for path in posts(archive_dir):
            rel = _rel(path, archive_dir)
            page = pages.get(rel)
            if page is None or not page.is_file():
                problems.append(Problem(rel, "Hugo rendered no page for this post"))
                continue
            problems += [Problem(rel, m) for m in compare_rendered(path, page, out)]
        return problems


def build_site(archive_dir: Path, out: Path, site: Path | None = None) -> dict[str, Path]:
    """Build `archive_dir` with Hugo into `out`, from a copy of `site` (or ours).

    Returns each post's rendered page, keyed by the post's path in the archive.
    """
    hugo = shutil.which("hugo")
    if hugo is None:
        raise IngestError("hugo is not installed: apt-get install hugo (or see gohugo.io)")
    content = archive_dir.resolve()
    # Flags go to the build; `hugo list` takes only the environment.
    env = {**os.environ, "HUGO_CONTENTDIR": str(content), "HUGO_BASEURL": _BASE_URL,
           "HUGO_BUILDFUTURE": "true", "HUGO_BUILDEXPIRED": "true"}
    with tempfile.TemporaryDirectory(prefix="ingest-site-") as tmp:
        source = Path(tmp) / "site"
        if site is None:
            with resources.as_file(resources.files("ingest") / "site") as bundled:
                shutil.copytree(bundled, source)
        else:
            shutil.copytree(site, source, ignore=shutil.ignore_patterns(".git", "public", "resources"))
        _hugo([hugo, "--quiet", "--source", str(source), "--contentDir", str(content),
               "--destination", str(out.resolve()), "--baseURL", _BASE_URL,
               "--buildFuture", "--buildExpired"], env)
        listing = _hugo([hugo, "list", "all", "--source", str(source)], env)
    return _pages_by_post(listing, content, out)


def _hugo(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, check=False)
    if done.returncode != 0:
        raise IngestError(f"hugo failed to build the archive:\n{done.stderr.strip()}")
    return done.stdout


def _pages_by_post(listing: str, content: Path, out: Path) -> dict[str, Path]:
    """`hugo list all`'s CSV → post path in the archive → its page in `out`."""
    pages = {}
    for row in csv.DictReader(io.StringIO(listing)):
        source, permalink = Path(row.get("path") or ""), row.get("permalink") or ""
        if source.is_absolute():
            if not source.is_relative_to(content):
                continue
            source = source.relative_to(content)
        if not permalink.startswith(_BASE_URL):
            continue
        page = out / unquote(permalink[len(_BASE_URL):])
        pages[source.as_posix()] = page / "index.html" if permalink.endswith("/") else page
    return pages


def compare_rendered(post: Path, page: Path, out: Path) -> list[str]:
    _, body = split_front_matter(post.read_text(encoding="utf-8"))
    article, link = split_body(body)
    expected_html = article + (f'<div><p><a href="{link}">原文</a></p></div>' if link else "")
    expected = _shown(lxml.html.fragment_fromstring(expected_html, create_parent="div"))
    # Hugo writes UTF-8 whether or not a theme says so in a <meta charset>.
    page_html = page.read_text(encoding="utf-8", errors="replace")
    document = _shown(cast(lxml.html.HtmlElement, lxml.html.document_fromstring(page_html)))
    expected_text = visible_text(expected)
    rendered = _content_of(document, expected, expected_text)
    if rendered is None:
        return ["rendered page does not hold the article: " + _first_difference(
            expected_text, visible_text(document.body))]
    problems = []
    rendered_text = visible_text(rendered)
    if expected_text not in rendered_text:
        problems.append(f"text differs: {_first_difference(expected_text, rendered_text)}")
    if not _contains_run(_tags(rendered), _tags(expected)):
        problems.append("markup differs: Markdown re-interpreted part of the article")
    if _pre_texts(expected) != _pre_texts(rendered):
        problems.append("preformatted text differs")
    if link is not None and not any(a.text_content() == "原文" and _same_url(a.get("href"), link)
                                    for a in rendered.iter("a")):
        problems.append("原文 is not rendered as a link to the source")
    for img in rendered.iter("img"):
        src = img.get("src", "")
        if src and not urlsplit(src).scheme and not (page.parent / unquote(src)).is_file() \
                and not (out / unquote(src).lstrip("/")).is_file():
            problems.append(f"image {src} does not resolve in the built site")
    return problems


def _content_of(document: lxml.html.HtmlElement, expected: lxml.html.HtmlElement,
                text: str) -> lxml.html.HtmlElement | None:
    """The theme's content block, whatever the theme calls it: the innermost element
    holding the article's first and last words (`text` is the article's) and all of
    its markup (or, when the markup differs, just the words)."""
    if not text:
        return cast("lxml.html.HtmlElement", document.body)
    head, tail = text[:_ANCHOR], text[-_ANCHOR:]
    texts = ((e, visible_text(e)) for e in document.body.iter() if isinstance(e.tag, str))
    holders = sorted(((len(own), e) for e, own in texts if head in own and tail in own),
                     key=lambda pair: pair[0])
    tags = _tags(expected)
    whole = (e for _, e in holders if _contains_run(_tags(e), tags))
    return next(whole, holders[0][1] if holders else None)


def _shown(root: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    """`root` without what no reader sees: a theme's hidden decorations (PaperMod's
    "#" anchor in every heading with an id) are not the article's text."""
    for element in [e for e in root.iter() if isinstance(e.tag, str)
                    and (e.get("hidden") is not None or e.get("aria-hidden") == "true")]:
        element.drop_tree()
    return root


def _contains_run(haystack: list[str], needle: list[str]) -> bool:
    width = len(needle)
    return any(haystack[i:i + width] == needle for i in range(len(haystack) - width + 1))


def _same_url(rendered: str | None, markdown: str) -> bool:
    return rendered is not None and unquote(rendered) == unquote(markdown.replace("\\&", "&"))


def _tags(element: lxml.html.HtmlElement) -> list[str]:
    return [e.tag for e in element.iter() if isinstance(e.tag, str)][1:]


def _pre_texts(element: lxml.html.HtmlElement) -> list[str]:
    return [e.text_content() for e in element.iter("pre")]


def _first_difference(a: str, b: str) -> str:
    i = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"expected …{a[max(0, i - 30):i + 30]!r}…, rendered …{b[max(0, i - 30):i + 30]!r}…"


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()
