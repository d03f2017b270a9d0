"""`make bench-pages`: extraction on real article pages nobody here wrote, against the others.

The pages are newspaper4k's test pages (CNN, Time, Wired, Fox, cleveland.com, and
Arabic, Burmese, Chinese, Japanese, Latvian, Spanish, Thai news sites), with the
article text its tests expect. They are other people's pages, so they are
fetched from the package index at bench time (pip download of the sdist,
cached in out/), never kept in this repository.

Each page goes through ingest's generic extraction and its cleaner, through
trafilatura, through readability-lxml, and through the whole of `ingest run`
(a feed of links to the pages, served on 127.0.0.1, archived with
`full_content: always` and `summary: none`); each output's text is scored against
the expected text by words (a CJK character each): precision, recall, F1 (of
the means), and milliseconds a page (the fastest of three rounds). The expected
text is what newspaper4k's authors accept from their extractor: it leaves out
image captions and titles, so it is a strict judge of what surrounds a story.

Usage: python -m bench.realpages [--pages]   (--pages: a line a page)
"""

from __future__ import annotations

import argparse
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import lxml.html
import yaml

from ingest import sniff
from ingest.clean import clean_tree
from ingest.extract import extract_generic
from ingest.scripts import HAN

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "out" / "newspaper4k-sdist"
VERSION = "0.9.6"
URL = "https://example.com/news/article"
ROUNDS = 3
# The yardstick's words, fixed here so that a change to how ingest counts words cannot
# move the scores: a run of letters and digits, or a Han character.
_WORD = re.compile(rf"[{HAN}]|[^\W_]+")


def pages() -> list[tuple[str, bytes, str]]:
    """(name, page as served, expected text) of every test page that has both."""
    data = CACHE / f"newspaper4k-{VERSION}" / "tests" / "data"
    if not data.is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
                        ":all:", f"newspaper4k=={VERSION}", "--dest", str(CACHE)], check=True)
        with tarfile.open(CACHE / f"newspaper4k-{VERSION}.tar.gz") as archive:
            archive.extractall(CACHE, filter="data")
    found = []
    for page in sorted((data / "html").glob("*.html")):
        expected = data / "txt" / f"{page.stem}.txt"
        if expected.is_file():
            found.append((page.stem, page.read_bytes(), expected.read_text(encoding="utf-8")))
    return found


def text_of(fragment: str) -> str:
    if not fragment.strip():
        return ""
    return str(lxml.html.fragment_fromstring(fragment, create_parent="div").text_content())


def with_ingest(html: str) -> str:
    article = extract_generic(html, URL)
    assert article.tree is not None
    return text_of(clean_tree(article.tree, base_url=URL).html)  # as `ingest run` cleans a page


def with_trafilatura(html: str) -> str:
    import trafilatura

    return trafilatura.extract(html, url=URL, include_comments=False, include_tables=True) or ""


def with_readability(html: str) -> str:
    from readability import Document

    return text_of(Document(html, url=URL).summary(html_partial=True))


EXTRACTORS: dict[str, Callable[[str], str]] = {
    "ingest": with_ingest, "trafilatura": with_trafilatura, "readability-lxml": with_readability}


def extracted(extract: Callable[[str], str],
              found: list[tuple[str, bytes, str]]) -> tuple[dict[str, str], float]:
    """Each page's text by `extract`, and the seconds it took in all: the fastest of
    ROUNDS rounds, as the machine's other work only ever adds time."""
    htmls = [(name, sniff.decode_html(body, "text/html")) for name, body, _ in found]
    texts: dict[str, str] = {}
    rounds: list[float] = []
    for _ in range(ROUNDS):
        elapsed = 0.0
        for name, html in htmls:
            started = time.perf_counter()
            try:
                texts[name] = extract(html)
            except Exception as exc:  # an extractor that gives up on a page scores 0 there
                if not rounds:
                    print(f"  {name}: {exc!r}", file=sys.stderr)
                texts[name] = ""
            elapsed += time.perf_counter() - started
        rounds.append(elapsed)
    return texts, min(rounds)


def through_ingest_run(found: list[tuple[str, bytes, str]]) -> tuple[dict[str, str], float]:
    """Each page's text as `ingest run` archives it (full_content: always, summary: none),
    from a feed of links to the pages served on 127.0.0.1; and the run's seconds."""
    from ingest import cli
    from ingest.archive import load_post
    from ingest.render import split_body
    from tests.loopback import Loopback

    with Loopback() as server, tempfile.TemporaryDirectory() as folder:
        items = ""
        for name, body, _ in found:
            server.route(f"/p/{name}", body, content_type="text/html")
            items += (f"<item><title>{name}</title><link>{server.url(f'/p/{name}')}</link>"
                      "<description>summary</description></item>")
        server.route("/feed", f'<?xml version="1.0"?><rss version="2.0"><channel><title>pages</title>'
                              f"{items}</channel></rss>")
        config = Path(folder) / "config.yaml"
        config.write_text(yaml.safe_dump({
            "images": False, "full_content": "always", "summary": "none",
            "feeds": [{"name": "pages", "url": server.url("/feed")}]}), encoding="utf-8")
        started = time.perf_counter()
        cli.main(["--config", str(config), "--quiet", "run"], out=io.StringIO())
        elapsed = time.perf_counter() - started
        texts = {}
        for post in (Path(folder) / "archive").glob("*/*/*/*/index.md"):
            loaded = load_post(post)
            if loaded:
                texts[str(loaded[0]["title"])] = text_of(split_body(loaded[1])[0])
    return texts, elapsed


def _words(text: str) -> Counter[str]:
    return Counter(w.lower() for w in _WORD.findall(text))


def score(texts: dict[str, str], elapsed: float, found: list[tuple[str, bytes, str]],
          each: bool) -> dict[str, float]:
    precision, recall = [], []
    for name, _, expected in found:
        want, got = _words(expected), _words(texts.get(name, ""))
        shared = sum((want & got).values())
        precision.append(shared / max(1, sum(got.values())))
        recall.append(shared / max(1, sum(want.values())))
        if each:
            print(f"  {name:24} precision {precision[-1]:.3f}  recall {recall[-1]:.3f}")
    p, r = statistics.mean(precision), statistics.mean(recall)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0,
            "ms": elapsed / len(found) * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", action="store_true", help="print each page's scores")
    args = parser.parse_args()
    found = pages()
    print(f"{len(found)} real article pages (newspaper4k {VERSION}'s test pages and expected text)\n")
    print(f"{'extractor':20} {'F1':>6} {'precision':>10} {'recall':>7} {'ms/page':>8}")
    for name in [*EXTRACTORS, "ingest run"]:
        if args.pages:
            print(name)
        texts, elapsed = through_ingest_run(found) if name == "ingest run" else \
            extracted(EXTRACTORS[name], found)
        result = score(texts, elapsed, found, args.pages)
        print(f"{name:20} {result['f1']:6.3f} {result['precision']:10.3f} {result['recall']:7.3f} "
              f"{result['ms']:8.1f}", flush=True)
    print("\n(ingest run: the whole program, end to end, one run over a feed of the pages; "
          "its time includes fetching, cleaning and writing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
