"""The summary block in every mode: always the sample's shape; cached, budgeted LLM answers."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ingest import summary
from ingest.llm import parse_answer
from ingest.parse import parse_feed
from tests.conftest import CORPUS, DATA, Project, front_matter, needs_shared
from tests.loopback import Loopback, Request

# The sample's body: the block (head optional), then the 原文 link block.
SHAPE = re.compile(
    r"\A\n<div>\n\n<div>(?: (?P<keywords>[^\n<]*)\n<br/><br/>总结:\n(?P<summary>[^\n<]*) <div>)?\n"
    r"(?P<article>.*)\n</div>(?:</div>)?\n</div>\n\n<div>\n\n\[原文\]\([^)\s]+\)\n\n</div>\n\n\Z",
    re.DOTALL)
ARTICLE = ("<p>城市的夜晚越来越亮，路灯开始使用新型传感器。</p><p>传感器能根据行人和车辆调整亮度，"
           "节省了大量电力。</p><p>工程师说，这套系统在三个城市试点了两年。</p>"
           "<p>市民反馈最多的是，夜里回家的路更安全了。</p>")
LLM_ANSWER = {"keywords": ["路灯", "传感器", "节能"], "summary": "城市路灯用上了传感器，按人流调节亮度。"}


def feed(items: dict[str, str]) -> str:
    body = "".join(f"<item><title>{t}</title><link>https://news.example/{i}</link><pubDate>Mon, 02 Mar "
                   f"2026 08:00:00 GMT</pubDate><description><![CDATA[{html}]]></description></item>"
                   for i, (t, html) in enumerate(items.items()))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{body}</channel></rss>'


def body_of(project: Project) -> list[str]:
    return [front_matter(text)[1] for text in project.posts().values()]


def chat_endpoint(answers: list[dict[str, Any] | int | str]) -> Any:
    """A fake chat-completions endpoint answering from a script (status, raw content or JSON)."""
    def handle(request: Request) -> tuple[int, dict[str, str], bytes]:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, int):
            return answer, {"Content-Type": "application/json"}, b'{"error": "down"}'
        content = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
        reply = {"choices": [{"message": {"role": "assistant", "content": content}}]}
        return 200, {"Content-Type": "application/json"}, json.dumps(reply).encode()
    return handle


def llm_project(project: Project, server: Loopback, items: dict[str, str], answers: list[Any],
                **llm: Any) -> None:
    server.route("/feed", feed(items))
    server.route("/v1/chat/completions", handler=chat_endpoint(answers))
    project.configure([{"name": "news", "url": server.url("/feed")}], summary="llm",
                      summary_llm={"base_url": server.url("/v1"), "model": "test-model", **llm})


def asked(server: Loopback) -> list[Request]:
    return server.hits("/v1/chat/completions")


@pytest.mark.parametrize("mode", ["auto", "extractive", "none"])
def test_every_mode_writes_the_samples_block_shape(project: Project, server: Loopback, mode: str) -> None:
    server.route("/feed", (DATA / "feeds" / "36kr-official.xml").read_bytes())
    project.configure([{"name": "36kr", "url": server.url("/feed")}], summary=mode)
    project.run()
    for body in body_of(project):
        match = SHAPE.match(body)
        assert match, body[:300]
        if mode == "none":
            assert match["keywords"] is None
        else:
            keywords = match["keywords"].split(", ")
            assert 3 <= len(keywords) <= 8 and match["summary"]


def test_auto_keeps_a_feed_block_byte_for_byte_and_extractive_replaces_it(project: Project,
                                                                         server: Loopback) -> None:
    raw = (DATA / "feeds" / "rss-gpt.xml").read_bytes()
    heads = [summary.split_block(e.content)[0] for e in parse_feed(raw, "http://x/").entries]
    server.route("/feed", raw)
    project.configure([{"name": "ai", "url": server.url("/feed")}], summary="auto")
    project.run()
    bodies = body_of(project)
    for head in filter(None, heads):
        assert sum(f"\n<div>\n\n<div>{head}<div>\n" in body for body in bodies) == 1
    project.configure([{"name": "ai", "url": server.url("/feed")}], summary="extractive")
    (project.state_dir / "state.sqlite3").unlink()
    for post in project.archive.glob("*/*/*/*/index.md"):
        post.unlink()
    project.run()
    for body in body_of(project):
        assert SHAPE.match(body) and "总结:<br><br>" not in body and "本文讨论了" not in body


def test_llm_summaries_are_used_and_cached(project: Project, server: Loopback,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    llm_project(project, server, {"路灯": ARTICLE}, [LLM_ANSWER], api_key_env="TEST_LLM_KEY")
    assert project.run()[0] == 0
    (body,) = body_of(project)
    match = SHAPE.match(body)
    assert match and match["keywords"] == "路灯, 传感器, 节能" and match["summary"] == LLM_ANSWER["summary"]
    (request,) = asked(server)
    assert request.headers["authorization"] == "Bearer sk-test"
    sent = json.loads(request.body)
    assert sent["model"] == "test-model" and "language of the article" in sent["messages"][0]["content"]
    assert "路灯开始使用新型传感器" in sent["messages"][1]["content"]
    # The entry changes (its title), its article does not: the cached summary is used.
    llm_project(project, server, {"路灯（更新）": ARTICLE}, [LLM_ANSWER], api_key_env="TEST_LLM_KEY")
    code, out = project.run()
    assert code == 0 and "1 updated" in out and len(asked(server)) == 1


@pytest.mark.parametrize("answer", [500, "not json at all", {"keywords": [], "summary": "x"},
                                    {"summary": "no keywords"}], ids=["500", "prose", "empty", "partial"])
def test_any_llm_failure_falls_back_to_extractive(project: Project, server: Loopback, answer: Any) -> None:
    llm_project(project, server, {"路灯": ARTICLE}, [answer])
    assert project.run()[0] == 0
    (body,) = body_of(project)
    match = SHAPE.match(body)
    assert match and match["summary"] and match["summary"] in summary.prose(ARTICLE).replace("\n", "")


def test_llm_budget_per_run(project: Project, server: Loopback) -> None:
    items = {f"第{i}篇": ARTICLE.replace("城市", f"第{i}座城市") for i in range(3)}
    llm_project(project, server, items, [LLM_ANSWER], max_per_run=1)
    project.configure([{"name": "news", "url": server.url("/feed")}], summary="llm", http={"workers": 1},
                      summary_llm={"base_url": server.url("/v1"), "model": "m", "max_per_run": 1})
    assert project.run()[0] == 0
    assert len(asked(server)) == 1
    summaries = [SHAPE.match(b)["summary"] for b in body_of(project)]  # type: ignore[index]
    assert summaries.count(LLM_ANSWER["summary"]) == 1 and len(project.posts()) == 3


def test_parse_answer_accepts_fenced_json() -> None:
    content = "```json\n" + json.dumps(LLM_ANSWER, ensure_ascii=False) + "\n```"
    reply = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
    made = parse_answer(reply)
    assert made.keywords == ("路灯", "传感器", "节能")


@needs_shared
@pytest.mark.parametrize("name", ["36kr/WuCoding-tinyxml2/36kr.xml", "36kr/fuzhuo-RssParser/36kr.xml",
                                  "hugo-g0f/upstream-feeds/steph-ango.xml",
                                  "hugo-g0f/upstream-feeds/byte-tank.xml"])
def test_extractive_on_corpus_articles(name: str) -> None:
    for entry in parse_feed((CORPUS / name).read_bytes(), "http://x/").entries[:25]:
        article = summary.split_block(entry.content)[1]
        text = summary.prose(article)
        made = summary.extractive(article)
        if not made.text:
            continue
        assert 1 <= len(made.keywords) <= 8
        assert all(k.lower() in text.lower() for k in made.keywords)
        flat = " ".join(text.split())
        ends = r"(?<=[。！？!?；…])|(?<=[.!?…])\s+|(?<=[.!?…][”’\"')\]])\s+"
        for sentence in re.split(ends, made.text):
            assert sentence.strip() in flat, sentence
