"""The summary block that opens every post, in the sample's exact shape.

    <div> keyword, keyword, keyword
    <br/><br/>总结:
    summary sentences <div>
    article HTML
    </div></div>

Feeds made by RSS-GPT already carry such a block, in several variants (the
``总结:`` marker before or after the ``<br>``s, or absent; ``<br>``, ``<br/>``
or ``<br />``; the closing ``</div></div>`` sometimes missing). `split_block`
finds it: a ``<div>`` holding only text and line breaks, whose first line is a
comma-separated keyword list or whose text has ``总结``, then the inner
``<div>`` with the article. That head is kept byte for byte.
"""

from __future__ import annotations

import copy
import functools
import html
import importlib.util
import math
import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import lxml.html

from ingest.clean import tree_of
from ingest.scripts import HAN

_BLOCK_START = re.compile(r"\s*<div>(?P<head>[^<]*(?:<br\s*/?>[^<]*)*)<div>[ \t]*\n?", re.IGNORECASE)
_CLOSE = "</div>"
_CLOSE_TAG = re.compile(re.escape(_CLOSE), re.IGNORECASE)
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_KEYWORD_SEPARATOR = re.compile(r"[,，、]")
_SENTENCE_STOP = re.compile(r"[。！？!?]|\.(?:\s|\Z)")
_MAX_KEYWORD_CHARS = 40


@dataclass(frozen=True, slots=True)
class Summary:
    keywords: tuple[str, ...]
    text: str


def split_block(content: str) -> tuple[str | None, str]:
    """(the feed's own block head, or None; the article HTML inside it)."""
    match = _BLOCK_START.match(content)
    if not match or not _is_summary_head(match.group("head")):
        return None, content
    return match.group("head"), _without_block_end(content[match.end():])


def _without_block_end(rest: str) -> str:
    """`rest` without its trailing white space and the block's closing tags, if it has them.

    Looked for from the end: a pattern ending the block, tried at every character of
    the article, took 0.19 ms an entry of 3 KB (this: 0.003 ms)."""
    text = rest.rstrip()
    if _CLOSE_TAG.fullmatch(text, len(text) - len(_CLOSE)):
        inner = text[:-len(_CLOSE)].rstrip()
        if _CLOSE_TAG.fullmatch(inner, len(inner) - len(_CLOSE)):
            return inner[:-len(_CLOSE)].rstrip()
    return text


def _is_summary_head(head: str) -> bool:
    text = _BR.sub("\n", head)
    if "总结" in text:
        return True
    # Without the marker, a first line of keywords: short pieces between commas (RSS-GPT
    # writes "," or, in Chinese, "、"), and no sentence stop, which prose would have.
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    keywords = [k for k in _KEYWORD_SEPARATOR.split(first_line) if k.strip()]
    return (len(keywords) >= 2 and all(len(k.strip()) <= _MAX_KEYWORD_CHARS for k in keywords)
            and not _SENTENCE_STOP.search(first_line))


def head_from(summary: Summary) -> str:
    """The block head for a summary we made, escaped so it stays text."""
    keywords = ", ".join(_one_line(k) for k in summary.keywords)
    return f" {keywords}\n<br/><br/>总结:\n{_one_line(summary.text)} "


def block(head: str | None, article_html: str) -> str:
    """The whole block; with no head it holds only the article."""
    article = f"\n{article_html}" if article_html else ""  # no blank line when empty
    if head is None:
        return f"<div>{article}\n</div>"
    return f"<div>{head}<div>{article}\n</div></div>"


def _one_line(text: str) -> str:
    return html.escape(" ".join(text.split()), quote=False)


# --- extractive: keywords and whole sentences taken from the article, offline ---

_BLOCK_TAGS = ("p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
               "td", "th", "figcaption", "br", "tr", "section", "article")
_NOT_PROSE = frozenset({"img-desc", "editor-note"})  # 36kr captions and "本文来自…" notes
_CJK = re.compile(f"[{HAN}]")
# Only full stops end a sentence: a clause ending in "；" is half of one.
_CJK_SENTENCE_END = re.compile(r"(?<=[。！？!?…])")
_LATIN_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_LATIN_WORD = re.compile(r"[^\W\d_][\w'’-]*[^\W_]|[^\W\d_]{2,}")
_CJK_FINAL_STOP = re.compile(r"[。！？!?…][\"'”’)）\]」』]*\Z")
_LATIN_FINAL_STOP = re.compile(r"[.!?…][\"'”’)\]]*\Z")
_CJK_TARGET_CHARS = 150
_LATIN_TARGET_SENTENCES = 3
_STOP_LATIN = frozenset("""
a about above after again against all also am an and any are as at be
because been before being below between both but by can could did do does doing down
during each few for from further had has have having he her here hers herself him
himself his how i if in into is it its itself just let me more most
my myself no nor not now of off on once only or other our ours ourselves
out over own same she should so some such than that the their theirs them themselves
then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
one two new also like get got make made many much may might must need never
every even ever still yet via per use used using says said say
""".split())
_STOP_CJK = frozenset("""
的 了 是 在 和 也 就 都 而 及 与 着 或 一个 没有 我们 你们 他们 她们 它们 这个 那个 这些 那些
因为 所以 但是 如果 可以 自己 已经 还是 就是 这样 那样 什么 怎么 为什么 以及 并且
而且 不是 一些 这种 那种 其中 之后 之前 目前 同时 通过 进行 对于 关于 由于 虽然
然而 因此 不过 还有 可能 需要 表示 认为 其实 甚至 当然 比如 以上
""".split())


def extractive(article: str | lxml.html.HtmlElement, keyword_count: int = 5) -> Summary:
    """Keywords and a short summary made of the article's own sentences."""
    text = prose(article)
    if not text.strip():
        return Summary((), "")
    cjk = len(_CJK.findall(text)) > len(text) * 0.2
    sentences = _sentences(text, cjk)
    tokens = [_words(s, cjk) for s in sentences]
    weights = _keyword_weights([w for ws in tokens for w in ws], cjk)
    keywords = tuple(w for w, _ in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
                     [:keyword_count])
    top = set(keywords) | {w for w, _ in Counter(weights).most_common(20)}
    scored = sorted(
        range(len(sentences)),
        key=lambda i: (-_sentence_score(tokens[i], top, weights, i), i),
    )
    chosen: list[int] = []
    said: set[str] = set()  # a sentence the article repeats (a pull quote, a template) is said once
    size = 0
    for i in scored:
        length = len(sentences[i]) if cjk else 1
        if sentences[i] in said or (cjk and chosen and size + length > _CJK_TARGET_CHARS * 1.4):
            continue
        chosen.append(i)
        said.add(sentences[i])
        size += length
        if size >= (_CJK_TARGET_CHARS if cjk else _LATIN_TARGET_SENTENCES):
            break
    joiner = "" if cjk else " "
    return Summary(keywords, joiner.join(sentences[i] for i in sorted(chosen)))


def prose(article: str | lxml.html.HtmlElement) -> str:
    """The article's text (from its HTML or its cleaned tree, left as it is), one line per
    block; captions and editor notes left out."""
    if isinstance(article, str) and not article.strip():
        return ""
    root = tree_of(article) if isinstance(article, str) else copy.deepcopy(article)
    for element in list(root.iter()):
        if (not isinstance(element.tag, str) or element.tag == "pre"
                or set((element.get("class") or "").split()) & _NOT_PROSE):
            element.drop_tree()  # comments and code blocks too: their text is no prose
    for element in root.iter(*_BLOCK_TAGS):
        element.tail = "\n" + (element.tail or "")
    return str(root.text_content())


def _sentences(text: str, cjk: bool) -> list[str]:
    pattern = _CJK_SENTENCE_END if cjk else _LATIN_SENTENCE_END
    out = []
    for line in text.splitlines():
        for piece in pattern.split(" ".join(line.split())):
            piece = piece.strip()
            # Headings and captions have no final stop: they are not sentences.
            final_stop = _CJK_FINAL_STOP if cjk else _LATIN_FINAL_STOP
            if len(piece) >= (6 if cjk else 20) and final_stop.search(piece):
                out.append(piece)
    return out


def _words(sentence: str, cjk: bool) -> list[str]:
    if cjk:
        import rjieba  # imported on first use: start-up stays fast for runs without it

        return [w for w in rjieba.cut(sentence, False) if _is_cjk_keyword(w)]
    words = (w.lower().replace("’", "'") for w in _LATIN_WORD.findall(sentence))
    return [w for w in words if w not in _STOP_LATIN and "'" not in w]  # contractions are no topic


def _is_cjk_keyword(word: str) -> bool:
    word = word.strip()
    if len(word) < 2 or word in _STOP_CJK or word.lower() in _STOP_LATIN or word.isdigit():
        return False
    return bool(_CJK.search(word)) or (word.isascii() and word[0].isalpha() and len(word) <= 20)


def _keyword_weights(words: list[str], cjk: bool) -> dict[str, float]:
    counts = Counter(words)
    if not cjk:
        return {w: float(n) * (1 + min(len(w), 12) / 12) for w, n in counts.items()}
    idf, median = _idf_table()
    return {w: n * idf.get(w, median) for w, n in counts.items()}


def _sentence_score(words: list[str], top: set[str], weights: dict[str, float], index: int) -> float:
    hits = sum(weights[w] for w in set(words) if w in top)
    lead = 0.3 if index == 0 else 0.15 if index < 3 else 0.0
    return hits / math.sqrt(len(words) + 1) * (1 + lead)


def _idf_table() -> tuple[dict[str, float], float]:
    """jieba's IDF table, read once: worker threads must not all load it at once."""
    with _IDF_LOCK:
        return _load_idf_table()


_IDF_LOCK = threading.Lock()


@functools.cache
def _load_idf_table() -> tuple[dict[str, float], float]:
    """jieba's IDF table, read as a file: importing jieba itself costs seconds."""
    spec = importlib.util.find_spec("jieba")
    if spec is None or not spec.submodule_search_locations:
        return {}, 1.0
    path = Path(next(iter(spec.submodule_search_locations))) / "analyse" / "idf.txt"
    table: dict[str, float] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            word, _, value = line.rstrip("\n").partition(" ")
            if value:
                table[word] = float(value)
    values = sorted(table.values())
    return table, values[len(values) // 2] if values else 1.0
