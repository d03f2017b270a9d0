from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import summary
from ingest.summary import Summary, block, extractive, head_from, split_block

ARTICLE = "<p>第一段。</p><p>第二段。</p>"


@pytest.mark.parametrize("content", [
    # the sample's own shape, closed
    "<div> 甲, 乙, 丙\n<br/><br/>总结:\n摘要一句。 <div>\n" + ARTICLE + "\n</div></div>",
    # RSS-GPT with 总结 before the breaks, the block left unclosed
    "\n<div> 甲, 乙, 丙\n总结:<br><br>摘要一句。 <div>\n" + ARTICLE,
    # <br /> spelling, no 总结 marker, keywords alone on the first line
    "<div> 甲, 乙, 丙<br /><br />摘要一句。 <div>\n" + ARTICLE,
    # breaks on their own lines
    "<div> 甲, 乙, 丙<br>\n<br>\n摘要一句。总结: 还是摘要。 <div>\n" + ARTICLE + "</div></div>",
    # keywords between Chinese enumeration commas, no 总结 marker
    "<div> 甲、乙、丙\n摘要一句。 <div>\n" + ARTICLE,
    # closed in capitals, white space between and after the closing tags
    "<div> 甲, 乙, 丙<br><br>摘要一句。 <div>\n" + ARTICLE + "\n </DIV>\n\u3000</div>\n ",
])
def test_rss_gpt_block_variants_are_found(content: str) -> None:
    head, article = split_block(content)
    assert head is not None and ("甲, 乙, 丙" in head or "甲、乙、丙" in head) and "摘要一句" in head
    assert article.strip() == ARTICLE


@pytest.mark.parametrize("content", [
    ARTICLE,
    '<div style="font-family: Arial">' + ARTICLE + "</div>",
    "<div>Just a sentence without keywords<div>\n" + ARTICLE + "</div></div>",
    "<div><p>nested</p><div>\n" + ARTICLE,
    "<div>Prose, with commas, is no list of keywords.<div>\n" + ARTICLE + "</div></div>",
    "<div>城市更新进入第二阶段，街区的老房子开始改造，居民可以选择回迁。<div>\n" + ARTICLE,
])
def test_ordinary_content_has_no_block(content: str) -> None:
    assert split_block(content) == (None, content)


def test_feed_head_is_kept_byte_for_byte() -> None:
    head = " 甲, 乙\n<br/><br/>总结:\n摘要。 "
    assert block(head, ARTICLE) == f"<div>{head}<div>\n{ARTICLE}\n</div></div>"


def test_made_head_has_the_samples_shape_and_is_escaped() -> None:
    made = head_from(Summary(("a<b", "c"), "x & y\n\n z"))
    assert made == " a&lt;b, c\n<br/><br/>总结:\nx &amp; y z "
    assert block(None, "") == "<div>\n</div>"


CHINESE = ("<p>城市的夜晚越来越亮，路灯开始使用新型传感器。</p><h2>路灯的变化</h2>"
           "<p>传感器能根据行人和车辆调整亮度，节省了大量电力。</p>"
           "<p>工程师说，这套系统在三个城市试点了两年。</p><p class=\"img-desc\">图：试点街道</p>"
           "<p>市民反馈最多的是，夜里回家的路更安全了。</p><p class=\"editor-note\">本文来自测试。</p>")
ENGLISH = ("<p>The river flooded the old mill twice this year. Engineers blame upstream dams.</p>"
           "<h2>What changed</h2><p>Upstream dams now release water in sudden pulses. The mill's "
           "owners asked the council for a warning system.</p><p>The council agreed to fund "
           "sensors along the river. They will be installed before spring.</p>")


@pytest.mark.parametrize("article", [CHINESE, ENGLISH])
def test_extractive_takes_whole_sentences_and_keywords_from_the_article(article: str) -> None:
    made = extractive(article)
    text = summary.prose(article)
    assert 3 <= len(made.keywords) <= 8
    assert all(k.lower() in text.lower() for k in made.keywords)
    sentences = summary._sentences(text, summary._CJK.search(text) is not None)
    assert made.text and all(s in sentences for s in _split(made.text, sentences))
    assert "图：试点街道" not in made.text and "本文来自" not in made.text
    assert "路灯的变化" not in made.text and "What changed" not in made.text  # headings


def _split(text: str, sentences: list[str]) -> list[str]:
    found = [s for s in sentences if s in text]
    assert "".join(found).replace(" ", "") == text.replace(" ", "")
    return found


def test_extractive_budget() -> None:
    long_chinese = "".join(f"<p>第{i}个句子讲的是城市路灯和传感器的故事。</p>" for i in range(60))
    assert 60 <= len(extractive(long_chinese).text) <= 220
    assert len(re.findall(r"[.!?]", extractive(ENGLISH).text)) == 3


@pytest.mark.parametrize(("repeated", "other"), [
    ("港口城市的夜市在改造后重新开放，摊主数量比去年多了一倍。", "管理方按摊位面积收费，细则公开。"),
    ("The night market reopened after the works, with twice as many stalls.",
     "Stall fees follow the stall's area, and the rules are public."),
])
def test_a_sentence_the_article_repeats_is_summarized_once(repeated: str, other: str) -> None:
    made = extractive(f"<p>{repeated}</p>" * 8 + f"<p>{other}</p>")
    assert made.text.count(repeated) == 1 and other in made.text


def test_a_clause_ending_in_a_semicolon_is_not_a_sentence() -> None:
    article = ("<p>乐视网前三季度营收约167亿元，同比增长百分之八十；"
               "其收入增长主要来自超级电视和会员付费。</p>"
               "<ul><li><p>定位：汽车内饰清洗服务；</p></li><li><p>基准：新品牌，无认知基础；</p></li></ul>"
               "<p>作者：薛洪言，苏宁金融研究院互联网金融研究中心主任；</p>"
               "<p>分析人士认为，超级电视的销量决定了乐视网明年的营收能否继续增长。</p>")
    made = extractive(article)
    text = summary.prose(article)
    sentences = [s for s in re.split(r"(?<=[。！？])", made.text) if s]
    assert sentences and all(s in text for s in sentences)
    assert "基准" not in made.text and "作者" not in made.text and "定位" not in made.text


def test_extractive_of_nothing_is_empty() -> None:
    assert extractive("") == Summary((), "")
    assert extractive("<p>   </p>") == Summary((), "")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_property_extractive_head_is_one_safe_block(text: str) -> None:
    head = head_from(extractive(f"<p>{text}</p>"))
    assert "<" not in head.replace("<br/><br/>", "")
    assert not re.search(r"\n[ \t]*\n", head)
