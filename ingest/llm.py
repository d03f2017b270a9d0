"""Summaries from an OpenAI-compatible chat-completions endpoint: cached, budgeted, optional.

``summary: llm`` asks the endpoint in `summary_llm` for keywords and a summary
in the article's language. Every answer is cached in the state under a hash of
the model and the article's text, so the same article is never summarized
twice (RSS-GPT re-summarized the same entries on every run), and no run asks
more than `max_per_run` times. Whatever goes wrong — no answer, a refusal, an
answer that is not the JSON asked for, the budget spent — the caller falls back
to the extractive summary: a post is never lost or delayed for want of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from ingest.config import SummaryLLM
from ingest.errors import IngestError
from ingest.fetch import HTTP
from ingest.state import WorkerCache
from ingest.summary import Summary, prose

if TYPE_CHECKING:
    from lxml.html import HtmlElement

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 1024 * 1024
PROMPT = (
    "You summarize news articles for an archive. Reply with one JSON object and nothing else: "
    '{"keywords": ["3 to 8 keywords"], "summary": "2 to 4 sentences"}. '
    "Write the keywords and the summary in the language of the article."
)
_FENCE = re.compile(r"\A\s*```(?:json)?\s*(.*?)\s*```\s*\Z", re.DOTALL)


class LLMSummarizer:
    def __init__(self, fetcher: HTTP, settings: SummaryLLM, cache: WorkerCache,
                 clock: Callable[[], datetime]) -> None:
        self._fetcher = fetcher
        self._settings = settings
        self._cache = cache
        self._clock = clock
        self._lock = threading.Lock()
        self._asked = 0

    def summarize(self, article: str | HtmlElement) -> Summary | None:
        """The endpoint's summary of the article (its HTML or its cleaned tree), or None:
        then the caller makes its own."""
        text = prose(article).strip()[: self._settings.max_chars]
        if not text:
            return None
        key = hashlib.sha256(f"{self._settings.model}\n{text}".encode()).hexdigest()
        cached = self._cache.summary(key)
        if cached is not None:
            return Summary(tuple(cached[0]), cached[1])
        with self._lock:
            if self._asked >= self._settings.max_per_run:
                if self._asked == self._settings.max_per_run:
                    log.warning("summary_llm.max_per_run (%d) reached: the other summaries of this "
                                "run are extractive", self._settings.max_per_run)
                    self._asked += 1
                return None
            self._asked += 1
        try:
            made = self._ask(text)
        except (IngestError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("LLM summary failed, using the extractive one: %s", exc)
            return None
        self._cache.remember_summary(key, list(made.keywords), made.text, self._clock())
        return made

    def _ask(self, text: str) -> Summary:
        headers = {}
        api_key = os.environ.get(self._settings.api_key_env, "")
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        response = self._fetcher.post_json(
            f"{self._settings.base_url.rstrip('/')}/chat/completions",
            {"model": self._settings.model, "temperature": 0,
             "messages": [{"role": "system", "content": PROMPT}, {"role": "user", "content": text}]},
            max_bytes=MAX_ANSWER_BYTES, headers=headers)
        return parse_answer(response.body)


def parse_answer(body: bytes) -> Summary:
    """The Summary in a chat-completions answer; ValueError if it is not what was asked."""
    content = json.loads(body)["choices"][0]["message"]["content"]
    fenced = _FENCE.match(content)
    data = json.loads(fenced.group(1) if fenced else content)
    keywords = [" ".join(str(k).split()) for k in data["keywords"] if str(k).strip()][:8]
    summary = " ".join(str(data["summary"]).split())
    if not keywords or not summary:
        raise ValueError("the answer has no keywords or no summary")
    return Summary(tuple(keywords), summary)
