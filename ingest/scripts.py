"""The one definition of the scripts written without spaces between words, for
every stage that counts or splits text by characters rather than by words."""

# Han ideographs: extension A, the unified block, compatibility ideographs.
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Han with Japanese kana and Korean Hangul syllables: CJK, as a character class body.
CJK = "\u3040-\u30ff" + HAN + "\uac00-\ud7af"
