"""Resource faults: exit 2 with a clear message, nothing half-written, nothing lost after."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ingest import archive, state
from ingest.state import DB_NAME
from tests import feedgen
from tests.conftest import Project
from tests.loopback import Loopback


def test_unwritable_archive_exits_2_before_fetching(project: Project, server: Loopback,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    server.route("/feed", feedgen.feed(3))
    (project.root / "blocker").write_text("a file where a folder should be")
    project.configure([{"name": "36kr", "url": server.url("/feed")}],
                      archive_dir="blocker/archive")
    assert project.run()[0] == 2
    assert "cannot write" in capsys.readouterr().err
    assert server.hits("/feed") == []


def test_disk_full_mid_run_exits_2_and_the_next_run_completes(project: Project, server: Loopback,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    server.route("/a", feedgen.feed(20))
    server.route("/b", feedgen.feed(20, first=100))
    project.configure([{"name": "a", "url": server.url("/a")}, {"name": "b", "url": server.url("/b")}],
                      http={"workers": 1})
    real_write = archive._write_temp
    calls = 0

    def write_until_full(*args: Any, **kwargs: Any) -> Path:
        nonlocal calls
        calls += 1
        # Feed a: its sources, records and posts (63 files); then b's, until the disk is full.
        if calls > 80:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(archive, "_write_temp", write_until_full)
    assert project.run()[0] == 2
    assert "disk full" in capsys.readouterr().err
    written = project.posts()
    assert len(written) == 20  # feed a's: whole, and named; none of b's half-named
    assert not [p for p in project.root.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.undo()
    assert project.run()[0] == 0 and len(project.posts()) == 40
    assert all(project.posts()[path] == text for path, text in written.items())


def test_state_locked_by_another_program_exits_2(project: Project, server: Loopback,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    server.route("/feed", feedgen.feed(3))
    project.configure([{"name": "36kr", "url": server.url("/feed")}])
    assert project.run()[0] == 0
    monkeypatch.setattr(state, "BUSY_TIMEOUT", 0.2)
    other = sqlite3.connect(project.state_dir / DB_NAME, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        assert project.run()[0] == 2
        assert "locked by another program" in capsys.readouterr().err
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert project.run()[0] == 0


@pytest.mark.parametrize("damage", ["whole", "middle"])
def test_damaged_state_is_rebuilt_from_the_archive(project: Project, server: Loopback,
                                                   damage: str) -> None:
    server.route("/feed", feedgen.feed(300))
    project.configure([{"name": "36kr", "url": server.url("/feed")}])
    project.run()
    before = project.snapshot()
    db = project.state_dir / DB_NAME
    if damage == "whole":
        db.write_bytes(b"this is not a database" * 100)
    else:  # the header and schema intact: only a query reaching the damage would notice
        data = bytearray(db.read_bytes())
        assert len(data) > 8 * 4096
        data[4 * 4096:6 * 4096] = b"\xa5" * (2 * 4096)
        db.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    code, out = project.run()
    assert code == 0 and "0 new, 0 updated, 300 unchanged" in out
    assert project.snapshot() == before
    assert list(project.state_dir.glob(f"{DB_NAME}.corrupt-*"))


def test_reindex_rebuilds_the_state(project: Project, server: Loopback) -> None:
    server.route("/feed", feedgen.feed(5))
    project.configure([{"name": "36kr", "url": server.url("/feed")}])
    project.run()
    assert project.run("reindex") == (0, f"state rebuilt from {project.archive}: 5 posts\n")
    assert list(project.state_dir.glob(f"{DB_NAME}.bak-*"))
    code, out = project.run()
    assert code == 0 and "5 unchanged" in out
