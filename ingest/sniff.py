"""What a body is, judged from its bytes: a feed, an HTML page, or a bot wall.

Servers lie about Content-Type (36kr answers its security check with 200 and
whatever type the feed had), so only the bytes are trusted.
"""

from __future__ import annotations

import re

# Markers of pages that stand in for content when a site suspects a bot. Each is
# specific to a challenge page, so an article merely mentioning captchas does not match.
_CHALLENGE_MARKERS = (
    "正在进行安全检测",  # 36kr / Alibaba Cloud WAF security check
    "_wafchallengeid",
    "TTGCaptcha",  # ByteDance slide captcha (36kr's feed URL, 2024)
    "verify_center",
    "cf-browser-verification",  # Cloudflare
    "cf_chl_opt",
    "challenge-platform",
    "geetest_",  # GeeTest captcha
    "_guard/auto.js",  # Alibaba Cloud ESA bot guard
)
# Challenge pages are small; a real article page that quotes a marker is not.
_CHALLENGE_MAX_BYTES = 128 * 1024
_HTML_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b",
                         re.IGNORECASE | re.DOTALL)
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def challenge_marker(body: bytes) -> str | None:
    """The marker that shows `body` is a WAF, captcha or security-check page."""
    if len(body) > _CHALLENGE_MAX_BYTES:
        return None
    text = body.decode("utf-8", errors="replace")
    return next((m for m in _CHALLENGE_MARKERS if m in text), None)


def looks_like_html(body: bytes) -> bool:
    return _HTML_START.match(body[:4096]) is not None


def html_title(body: bytes) -> str | None:
    match = _TITLE.search(body[:65536])
    if not match:
        return None
    title = " ".join(match.group(1).decode("utf-8", errors="replace").split())
    return title[:80] or None
