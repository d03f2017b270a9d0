"""Feeds of any size, in the shape of 36kr's official feed, for load and crash tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START = datetime(2026, 3, 1, tzinfo=UTC)
PARAGRAPHS = (
    "<p>第{n}篇文章的第一段：城市更新项目进入第二阶段，街区的老房子开始改造。</p>",
    "<p>负责人表示，改造会保留原有的街巷格局，<strong>居民可以选择回迁</strong>。</p>",
    "<h2>进展如何</h2><p>目前已有三分之二的住户签约，工期预计十八个月。</p>",
    "<blockquote><p>“我们希望老邻居还能做邻居。”</p></blockquote>",
    "<p class=\"image-wrapper\"><img src=\"https://img.36krcdn.com/hsossms/20260301/v2_{n:032x}@000_img_000"
    "?x-oss-process=image/format,jpg/interlace,1\"/></p>",
    "<p>附近的商户也在观望：租金会不会上涨，客流能不能回来，都还是未知数。</p>",
)


def item(n: int, *, article_bytes: int = 1500, dated: bool = True) -> str:
    body = ""
    while len(body.encode()) < article_bytes:
        body += "".join(p.format(n=n) for p in PARAGRAPHS)
    date = (START - timedelta(minutes=7 * n)).strftime("%Y-%m-%d %H:%M:%S  +0000")
    return (f"<item><title><![CDATA[第{n}篇：老街区改造的第{n}天]]></title>"
            f"<link>https://36kr.com/p/{4_000_000_000_000_000 + n}?f=rss</link>"
            f"<guid>https://36kr.com/p/{4_000_000_000_000_000 + n}?f=rss</guid>"
            + (f"<pubDate>{date}</pubDate>" if dated else "")
            + f"<description><![CDATA[{body}]]></description></item>")


def feed(count: int, *, first: int = 0, article_bytes: int = 1500) -> bytes:
    items = "".join(item(n, article_bytes=article_bytes) for n in range(first, first + count))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>36氪</title>'
            f"<link>https://36kr.com</link>{items}</channel></rss>").encode()
