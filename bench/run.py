"""`make bench`: ingest against the naive approach, measured in one run, on 127.0.0.1 only.

N feeds × M items (default 500 × 10; items in the RSS-GPT shape the sample's
generator read: a summary block and ~3 KB of article HTML) are served with
ETags by a loopback server in this process (bench/server.py: it answers as fast
as a real feed host, so that neither program is charged for a slow server).
Each measured program runs as a subprocess of its own, so its wall time and
peak RSS (bench/peak.py) are its own:

    naive        bench/naive.py: feedparser.parse(url), a BeautifulSoup round trip
                 per entry, a markdown file per entry (no state, no conditional GET)
    cold         ingest run on an empty archive: every item new
    steady       ingest run again: every feed answers 304 (median of 5 runs)
    large        the same steady run with 100,000 posts already archived (median of 5,
                 taken in turns with the steady runs)
    floor        bench/floor.py: the imports a run needs and the same conditional GETs with
                 httpx, nothing else (median of 5, in the same turns): the fastest a run of
                 304s on these libraries could be here, so naive / floor bounds its ratio
    cold small   ingest run on N/5 feeds: peak memory must not grow with N
    search       `ingest search` over the large archive: the query alone (in this
                 process, the slowest of queries matching every post, one, none) and the
                 whole command (median of 5) against `ingest --version`

Targets (ratios, same machine, same run): cold at least 2.5× faster than naive;
steady at least 40× faster than naive; large within 1.2× of steady; peak RSS of cold with
N feeds within 1.25× of cold with N/5; a query on the large archive under
100 ms. Also timed: start-up, and the extractive summary of a 5,000-character
Chinese article.

Usage: python -m bench.run [--feeds N] [--items M] [--posts P] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bench.server import FeedServer
from ingest.config import Http

ROOT = Path(__file__).resolve().parents[1]
WORKERS = Http().workers  # the requests a run makes at a time (by default)
START = datetime(2026, 3, 1, tzinfo=UTC)
PARAGRAPHS = (
    "<p>第{f}号订阅源的第{i}篇文章：城市更新进入第二阶段，街区的老房子开始改造，居民可以选择回迁。</p>",
    "<p>负责人表示，改造会保留原有的街巷格局，<strong>三分之二的住户已经签约</strong>，工期预计十八个月。</p>",
    "<h2>进展如何</h2><p>附近的商户也在观望：租金会不会上涨，客流能不能回来，都还是未知数。</p>",
    '<p class="image-wrapper"><img src="https://img.36krcdn.com/hsossms/20260301/v2_{f:04d}{i:04d}@000_img_000'
    '?x-oss-process=image/format,jpg/interlace,1/format,jpg/interlace,1"/></p>',
    "<blockquote><p>“我们希望老邻居还能做邻居。”一位住了三十年的居民说。</p></blockquote>",
    "<ul><li>第一期：道路和管网</li><li>第二期：沿街立面</li><li>第三期：公共空间</li></ul>",
)


def article(f: int, i: int, article_bytes: int) -> str:
    """The HTML of item `i` of feed `f`: at least `article_bytes` bytes."""
    html = ""
    while len(html.encode()) < article_bytes:
        html += "".join(p.format(f=f, i=i) for p in PARAGRAPHS)
    return html


def item(f: int, i: int, article_bytes: int) -> str:
    head = (f" 城市更新, 老街区, 回迁, 商户, 第{f}号\n<br/><br/>总结:\n"
            f"第{f}号订阅源的第{i}篇文章讲述了老街区改造的进展，居民和商户的期待与担心。 ")
    published = START - timedelta(minutes=37 * (f * 10 + i))
    return (f"<item><title>第{f}号源第{i}篇：老街区改造进入第二阶段</title>"
            f"<link>https://36kr.com/p/{4_100_000_000_000_000 + f * 1000 + i}</link>"
            f"<guid>https://36kr.com/p/{4_100_000_000_000_000 + f * 1000 + i}</guid>"
            f"<pubDate>{published:%a, %d %b %Y %H:%M:%S} GMT</pubDate>"
            f"<description><![CDATA[<div>{head}<div>\n{article(f, i, article_bytes)}\n</div></div>]]>"
            "</description></item>")


def feed(f: int, items: int, article_bytes: int) -> bytes:
    body = "".join(item(f, i, article_bytes) for i in range(items))
    return (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>源{f}</title>'
            f"<link>https://36kr.com</link>{body}</channel></rss>").encode()


def measure(args: list[str], cwd: Path) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit code) of `python -m MODULE ARGS` in a subprocess."""
    with tempfile.NamedTemporaryFile(prefix="ingest-bench-rss-") as rss:
        started = time.perf_counter()
        process = subprocess.run([sys.executable, "-m", "bench.peak", rss.name, *args], cwd=cwd,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
        elapsed = time.perf_counter() - started
        if process.returncode:
            error = process.stderr.decode(errors="replace")
            raise SystemExit(f"{' '.join(args)} failed ({process.returncode}):\n{error[-2000:]}")
        return elapsed, float(Path(rss.name).read_text(encoding="ascii")), process.returncode


def configure(folder: Path, urls: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({
        "images": False,
        "full_content": "never",
        "summary": "auto",
        # All bench feeds share one host, 127.0.0.1; real feeds spread over many, so a run
        # makes as many requests at a time as it has workers.
        "http": {"per_host": WORKERS},
        "feeds": [{"name": f"f{i}", "url": url} for i, url in enumerate(urls)],
    }), encoding="utf-8")
    return config


def ingest(config: Path, *args: str) -> tuple[float, float, int]:
    return measure(["ingest", "--config", str(config), *args], config.parent)


def median(timings: list[tuple[float, float, int]]) -> tuple[float, float, int]:
    return sorted(timings, key=lambda t: t[0])[len(timings) // 2]


def archive_of(folder: Path, posts: int, article_bytes: int) -> None:
    """`posts` posts as ingest writes them, dated over years, without running ingest; each
    holds an article of the feeds' items' size (a search reads what the posts hold)."""
    front = ("---\ntitle: 旧文章{n}\ncategories:\n- old\ndate: {date}\nlastmod: {date}\n"
             "ingest:\n  id: 36kr:{n}\n  source: {n:016x}\n---\n\n<div>\n\n<div>\n<p>旧文章{n}的正文。</p>\n"
             "{article}\n</div>\n</div>\n\n")
    for n in range(posts):
        moment = START - timedelta(hours=3 * n + 1, minutes=n % 59)
        post = folder / f"{moment:%Y/%m/%d}" / str(3_000_000_000_000 + n) / "index.md"
        post.parent.mkdir(parents=True, exist_ok=True)
        text = front.format(n=3_000_000_000_000 + n, article=article(n % 1000, n % 10, article_bytes),
                            date=moment.strftime("%a, %d %b %Y %H:%M:%S GMT"))
        post.write_text(text, encoding="utf-8")


def search_times(config: Path) -> dict[str, float]:
    """The slowest query over the large archive, and `ingest search` as a command."""
    from ingest.search import SearchIndex, parse_query

    index = SearchIndex(config.parent / ".ingest", config.parent / "archive")
    slowest = 0.0
    for query in ("旧文章", "正文", "3000000001234", "不存在的词"):  # every post, every post, one, none
        started = time.perf_counter()
        index.search(parse_query(query))
        slowest = max(slowest, time.perf_counter() - started)
    index.close()
    command = statistics.median(ingest(config, "search", "旧文章")[0] for _ in range(5))
    return {"search_query_ms": slowest * 1000, "search_command_s": command}


def micro() -> dict[str, float]:
    """Start-up time and the extractive summary of a 5,000-character Chinese article."""
    startup = [measure(["ingest", "--version"], ROOT)[0] for _ in range(3)]
    from ingest import summary

    article = "".join(p.format(f=1, i=1) for p in PARAGRAPHS) * 26
    summary.extractive(article)  # loads the dictionary and the IDF table once
    runs = []
    for _ in range(20):
        started = time.perf_counter()
        summary.extractive(article)
        runs.append(time.perf_counter() - started)
    return {"startup_s": min(startup), "extractive_ms": statistics.median(runs) * 1000,
            "extractive_chars": len(summary.prose(article))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--article-bytes", type=int, default=3000)
    parser.add_argument("--posts", type=int, default=100_000, help="posts in the large archive")
    parser.add_argument("--json", type=Path, default=ROOT / "out" / "bench.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"feeds": args.feeds, "items": args.items, "article_bytes": args.article_bytes,
                               "posts": args.posts, "cpus": os.cpu_count()}
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    try:
        with FeedServer() as server:
            urls = []
            for f in range(args.feeds):
                server.route(f"/feed/{f}", feed(f, args.items, args.article_bytes),
                             content_type="application/rss+xml", etag=f'"feed-{f}"')
                urls.append(server.url(f"/feed/{f}"))
            print(f"ingest benchmark: {args.feeds} feeds x {args.items} items (~{args.article_bytes} bytes "
                  f"of article each), served on 127.0.0.1; {os.cpu_count()} cores", flush=True)

            results["naive"] = measure(["bench.naive", str(work / "naive"), *urls], ROOT)
            small = configure(work / "small", urls)
            results["cold"] = ingest(small, "run")
            fifth = configure(work / "fifth", urls[: max(1, args.feeds // 5)])
            results["cold_fifth"] = ingest(fifth, "run")

            large = configure(work / "large", urls)
            started = time.perf_counter()
            archive_of(large.parent / "archive", args.posts, args.article_bytes)
            ingest(large, "reindex")
            ingest(large, "run")
            results["large_setup_s"] = time.perf_counter() - started
            # Steady runs last about a second: taken in turns with the large ones, five of
            # each, so that both meet the same machine (writeback of the 100,000 posts, ...).
            os.sync()
            steady, large_runs, floor = [], [], []
            for _ in range(5):
                steady.append(ingest(small, "run"))
                large_runs.append(ingest(large, "run"))
                floor.append(measure(["bench.floor", str(WORKERS), *urls], ROOT))
            results["steady"], results["large"] = median(steady), median(large_runs)
            results["floor"] = median(floor)
            results.update(search_times(large))
        results.update(micro())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\n(also written to {args.json})")
    return 0 if all(results["targets"].values()) else 1


def print_table(r: dict[str, Any]) -> None:
    naive_s = r["naive"][0]
    rows = [
        ("naive baseline", r["naive"], "1.00x"),
        ("ingest cold (empty archive)", r["cold"], f"{naive_s / r['cold'][0]:.2f}x faster"),
        ("ingest steady (every feed 304)", r["steady"], f"{naive_s / r['steady'][0]:.1f}x faster"),
        (f"ingest steady, {r['posts']:,} posts archived", r["large"],
         f"{r['large'][0] / r['steady'][0]:.2f}x the steady run"),
        ("floor: imports + the GETs, httpx alone", r["floor"], f"{naive_s / r['floor'][0]:.1f}x faster"),
        (f"ingest cold, {max(1, r['feeds'] // 5)} feeds", r["cold_fifth"],
         f"peak RSS x{r['cold'][1] / r['cold_fifth'][1]:.2f} at {r['feeds']} feeds"),
    ]
    print(f"\n{'run':<40}{'seconds':>9}{'peak RSS':>11}  compared")
    for name, (seconds, rss, _), note in rows:
        print(f"{name:<40}{seconds:>9.2f}{rss:>8.0f} MB  {note}")
    r["targets"] = {
        "cold at least 2.5x faster than naive": naive_s / r["cold"][0] >= 2.5,
        "steady at least 40x faster than naive": naive_s / r["steady"][0] >= 40,
        "large archive within 1.2x of steady": r["large"][0] <= 1.2 * r["steady"][0],
        "peak memory flat in the number of feeds": r["cold"][1] <= 1.25 * r["cold_fifth"][1],
        f"a search over {r['posts']:,} posts under 100 ms": r["search_query_ms"] < 100,
    }
    print("\ntargets:")
    for name, met in r["targets"].items():
        print(f"  {'PASS' if met else 'FAIL'}  {name}")
    command_ms, ratio = r["search_command_s"] * 1000, r["search_command_s"] / r["startup_s"]
    print(f"\nsearch over {r['posts']:,} posts: slowest query {r['search_query_ms']:.0f} ms; "
          f"`ingest search` {command_ms:.0f} ms, {ratio:.1f}x `ingest --version`")
    print(f"\nstart-up (ingest --version): {r['startup_s'] * 1000:.0f} ms; extractive summary of a "
          f"{r['extractive_chars']:,}-character Chinese article: {r['extractive_ms']:.1f} ms (median of 20)")


if __name__ == "__main__":
    sys.exit(main())
