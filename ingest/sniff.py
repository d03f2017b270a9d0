"""What a body is, judged from its bytes: a feed, an HTML page, a bot wall; its text.

Servers lie about Content-Type (36kr answers its security check with 200 and
whatever type the feed had), so only the bytes are trusted.

Decoding an HTML page: valid UTF-8 stays UTF-8; otherwise the declared label
(HTTP charset, then <meta> or the XML declaration), read the way browsers do
(gb2312 and gbk as their superset gb18030, latin-1 and ascii as windows-1252);
charset-normalizer guesses only when nothing is declared or the label fails, and
only between multi-byte encodings (GBK, Big5, Shift-JIS…): for single-byte text
the browsers' default, windows-1252, is the better bet.
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
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def challenge_marker(body: bytes) -> str | None:
    """The marker that shows `body` is a WAF, captcha or security-check page."""
    if len(body) > _CHALLENGE_MAX_BYTES:
        return None
    text = body.decode("utf-8", errors="replace")
    return next((m for m in _CHALLENGE_MARKERS if m in text), None)


def looks_like_html(body: bytes) -> bool:
    return _HTML_START.match(body[:4096]) is not None


def html_title(body: bytes) -> str | None:
    match = _TITLE.search(decode_html(body[:65536]))
    if not match:
        return None
    title = " ".join(match.group(1).split())
    return title[:80] or None


# Labels read as the superset browsers use (WHATWG Encoding Standard).
_SUPERSETS = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030",
    "csgb2312": "gb18030", "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
    "l1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252",
}
_HTTP_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_DECLARED = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([\w.:-]+)"""
                       rb"""|<\?xml[^>]+encoding\s*=\s*["']([\w.:-]+)""", re.IGNORECASE)
_SINGLE_BYTE = frozenset({"ascii", "latin_1", "koi8_r", "koi8_u"})
_SINGLE_BYTE_PREFIXES = ("cp12", "iso8859", "mac_", "cp437", "cp85")
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def codec_for(label: str) -> str:
    label = label.strip().lower()
    return _SUPERSETS.get(label, label)


def declared_charset(body: bytes, content_type: str = "") -> str | None:
    """The charset the server or the document declares, if any."""
    match = _HTTP_CHARSET.search(content_type)
    if match:
        return match.group(1)
    found = _DECLARED.search(body[:4096])
    if found:
        return (found.group(1) or found.group(2)).decode("ascii", errors="ignore")
    return None


def decode_html(body: bytes, content_type: str = "") -> str:
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body.decode(codec, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    label = declared_charset(body, content_type)
    if label:
        try:
            return body.decode(codec_for(label))
        except (LookupError, UnicodeDecodeError):
            pass
    from charset_normalizer import from_bytes  # a last resort, imported only when needed

    best = from_bytes(body).best()
    if best is None or best.encoding in _SINGLE_BYTE or best.encoding.startswith(_SINGLE_BYTE_PREFIXES):
        # Guesses between single-byte Latin encodings are coin tosses (Portuguese read as
        # cp1250 gives "Coraçăo"); browsers read undeclared pages as windows-1252.
        return body.decode("cp1252", errors="replace")
    return str(best)


def image_type(body: bytes) -> str | None:
    """The file extension of an image by its magic number: never trust a URL or a header."""
    if body.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if body.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if body[:6] in (b"GIF87a", b"GIF89a"):
        return ".gif"
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return ".webp"
    if body[4:8] == b"ftyp":
        box = body[8:min(len(body), int.from_bytes(body[:4], "big"))]
        brands = {box[i:i + 4] for i in range(0, len(box), 4)}  # major, version, compatible
        if brands & {b"avif", b"avis"}:
            return ".avif"
    return None


def is_svg(body: bytes) -> bool:
    head = body[:1024].lstrip().lower()
    return head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head)
