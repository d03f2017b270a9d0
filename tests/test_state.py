"""The state and the run lock, on their own: what a run records is what the next one reads."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.errors import LockError
from ingest.lock import LOCK_NAME, RunLock
from ingest.models import FeedResult, FeedStatus, KnownPost, Validators
from ingest.state import BACKOFF_AFTER, BACKOFF_FIRST, WorkerCache, open_state

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def post(key: str, source_hash: str = "h1", feed: str = "a") -> KnownPost:
    return KnownPost(key, feed, f"2026/03/01/{key}/index.md", source_hash, NOW, NOW)


def test_posts_recorded_are_known_and_a_change_updates_them(tmp_path: Path) -> None:
    state = open_state(tmp_path / "state", tmp_path / "archive")
    keys = [f"k{n}" for n in range(1200)]  # more than one IN (...) of SQLite's variables
    with state.transaction():
        for key in keys:
            state.record_post(post(key))
        state.record_post(post("k7", "h2"))
    known = state.known([*keys, "missing", "k7"])
    assert len(known) == 1200 and "missing" not in known
    assert known["k7"].source_hash == "h2" and known["k7"].path == "2026/03/01/k7/index.md"
    assert state.count_entries() == 1200
    state.close()
    again = open_state(tmp_path / "state", tmp_path / "archive")  # what the next run reads
    assert again.known(["k1"])["k1"] == post("k1")
    again.close()


def test_the_journal_and_first_seen_times(tmp_path: Path) -> None:
    state = open_state(tmp_path / "state", tmp_path / "archive")
    with state.transaction():
        state.add_pending([("a", "2026/03/01/a/index.md"), ("b", "2026/03/01/b/index.md")])
    with state.transaction():
        state.clear_pending(["a"])
    assert state.pending() == [("b", "2026/03/01/b/index.md")]
    with state.transaction():
        first = state.first_seen(["x"], NOW)
    with state.transaction():
        later = state.first_seen(["x", "y"], NOW + timedelta(hours=5))
    assert first == {"x": NOW} and later == {"x": NOW, "y": NOW + timedelta(hours=5)}
    state.close()


def test_a_feed_failing_run_after_run_backs_off_and_a_success_resets_it(tmp_path: Path) -> None:
    state = open_state(tmp_path / "state", tmp_path / "archive")
    url = "https://feeds.example/a"
    with state.transaction():
        state.record_feed(FeedResult("a", url, FeedStatus.OK), Validators('"v1"', None), NOW)
    assert state.polls()[url].validators == Validators('"v1"', None)
    failed = FeedResult("a", url, FeedStatus.ERROR, error="HTTP 503")
    for run in range(BACKOFF_AFTER):
        with state.transaction():
            state.record_feed(failed, None, NOW + timedelta(minutes=run))
    last = state.polls()[url]
    assert last.failures == BACKOFF_AFTER and last.last_error == "HTTP 503"
    assert last.validators == Validators('"v1"', None)  # a failure keeps what the last success sent
    assert last.next_poll == NOW + timedelta(minutes=BACKOFF_AFTER - 1) + BACKOFF_FIRST
    with state.transaction():
        state.record_feed(FeedResult("a", url, FeedStatus.OK), Validators('"v2"', None), NOW)
    assert state.polls()[url].failures == 0 and state.polls()[url].next_poll is None
    state.close()


def test_the_workers_cache_reads_what_another_connection_wrote(tmp_path: Path) -> None:
    state = open_state(tmp_path / "state", tmp_path / "archive")
    writer, reader = WorkerCache(state.path), WorkerCache(state.path)
    assert reader.summary("k") is None
    writer.remember_summary("k", ["城市", "更新"], "一句话。", NOW)
    assert reader.summary("k") == (["城市", "更新"], "一句话。")
    for cache in (writer, reader):
        cache.close()
    state.close()


def test_one_run_at_a_time_and_a_killed_runs_lock_is_taken_over(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    with (RunLock(tmp_path, "run", NOW),
          pytest.raises(LockError, match=r"pid \d+ on .*, `ingest run` started 2026-03-01"),
          RunLock(tmp_path, "backfill", NOW)):
        pass
    assert (tmp_path / LOCK_NAME).read_text() == ""  # ended cleanly
    # A killed run leaves its holder written, and no flock (the kernel dropped it).
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "h", "command": "run",
                                                  "started": "2026-02-28T00:00:00+00:00"}))
    with caplog.at_level(logging.WARNING), RunLock(tmp_path, "run", NOW):
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
    assert "did not finish" in caplog.text and holder["command"] == "run" and holder["pid"] != 1
