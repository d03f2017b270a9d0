"""The one definition of the scripts written without spaces between words, for
every stage that counts or splits text by characters rather than by words; and of
the marks that belong to the letter before them."""

import functools
import unicodedata

# Han ideographs: extension A, the unified block, compatibility ideographs.
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Han with Japanese kana and Korean Hangul syllables: CJK, as a character class body.
CJK = "\u3040-\u30ff" + HAN + "\uac00-\ud7af"


@functools.cache
def marks() -> str:
    """Combining marks (vowel signs, viramas, tone marks, accents written apart), as a
    character class body: they belong to the word they sit in, which a regex's \\w splits
    at each of them (Thai, Burmese, Devanagari words fall into pieces). Made when first
    asked for (a few milliseconds), not at every start-up: only the extractor needs it."""
    ranges: list[list[int]] = []
    for point in (*range(0x0300, 0x1E00), *range(0x20D0, 0x2100), *range(0xFE20, 0xFE30)):
        if unicodedata.category(chr(point)).startswith("M"):
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1][1] = point
            else:
                ranges.append([point, point])
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)
