"""The naive baseline: what the sample post's generator did, feed after feed.

For each feed in turn: ``feedparser.parse(url)`` (its own HTTP, sanitizing on),
the longest content of each entry through a BeautifulSoup ``html.parser`` round
trip, one markdown file per entry in a flat folder per feed. No state, no
conditional GET, no dedupe, no fsync, no cleaning beyond feedparser's.

Usage: python -m bench.naive OUT_DIR FEED_URL...
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import feedparser
from bs4 import BeautifulSoup


def main(out: Path, urls: list[str]) -> int:
    for index, url in enumerate(urls):
        data = feedparser.parse(url)
        folder = out / f"feed{index}"
        folder.mkdir(parents=True, exist_ok=True)
        for entry in data.entries:
            contents = [c.value for c in entry.get("content", [])] + [entry.get("summary", "")]
            body = str(BeautifulSoup(max(contents, key=len), "html.parser"))
            title = entry.get("title", "")
            name = re.sub(r"[^\w\s-]", "_", title)[:80] or "untitled"
            (folder / f"{name}.md").write_text(
                f"---\ntitle: '{title}'\ncategories: ['feed{index}']\ndate: {entry.get('published')}\n"
                f"---\n\n<div>\n{body}\n</div>\n<div>\n[原文]({entry.get('link')})\n</div>\n",
                encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
