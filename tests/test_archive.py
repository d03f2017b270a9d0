from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import archive
from ingest.errors import ArchiveError


def test_36kr_slug_is_the_article_id() -> None:
    assert archive.slug_for("36kr:2657851737276677", "whatever") == "2657851737276677"


def test_title_slug_is_unicode_aware_and_hashed() -> None:
    slug = archive.slug_for("https://x.example/1", "Sora 新视频: OpenAI's 4天!")
    assert slug.startswith("sora-新视频-openais-4天-") and len(slug.split("-")[-1]) == 8
    assert archive.slug_for("k", "") == archive.slug_for("k", "!!!")


def test_post_path_uses_the_utc_date() -> None:
    moment = datetime(2024, 2, 21, 23, 30, tzinfo=UTC)
    assert archive.post_path(moment, "s") == "2024/02/21/s/index.md"


@settings(max_examples=500, deadline=None)
@given(key=st.text(min_size=1), title=st.text())
def test_property_slug_is_safe_short_and_stable(key: str, title: str) -> None:
    slug = archive.slug_for(key, title)
    assert slug == archive.slug_for(key, title)
    assert 0 < len(slug.encode()) <= archive.MAX_SLUG_BYTES
    assert "/" not in slug and "\\" not in slug and "\x00" not in slug
    assert slug not in (".", "..") and not slug.startswith(".")
    assert slug == slug.strip() and "\u202e" not in slug


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "2024/01/01/x/index.md"
    archive.write_atomic(target, b"one")
    archive.write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["index.md"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unwritable_archive_is_an_archive_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ArchiveError, match="permissions"):
            archive.write_atomic(tmp_path / "a/index.md", b"x")
    finally:
        tmp_path.chmod(0o700)


POST = ("---\ntitle: t\ncategories:\n- feed\ndate: Mon, 01 Jan 2024 00:00:00 GMT\n"
        "lastmod: Mon, 01 Jan 2024 00:00:00 GMT\ningest:\n  id: k\n  source: h\n---\n\nbody\n")


def test_recover_post_keeps_whole_posts_and_removes_temp_files(tmp_path: Path) -> None:
    folder = tmp_path / "2024/01/01/x"
    folder.mkdir(parents=True)
    (folder / "index.md").write_text(POST)
    (folder / ".index.md.1234abcd.tmp").write_text("half")
    known = archive.recover_post(tmp_path, "2024/01/01/x/index.md")
    assert known is not None and (known.key, known.feed, known.source_hash) == ("k", "feed", "h")
    assert [p.name for p in folder.iterdir()] == ["index.md"]


def test_recover_post_removes_a_folder_holding_only_a_temp_file(tmp_path: Path) -> None:
    folder = tmp_path / "2024/01/01/y"
    folder.mkdir(parents=True)
    (folder / ".index.md.1234abcd.tmp").write_text("half")
    assert archive.recover_post(tmp_path, "2024/01/01/y/index.md") is None
    assert not folder.exists()


def test_the_writability_probe_leaves_nothing_and_clears_old_leftovers(tmp_path: Path) -> None:
    leftover = tmp_path / "..ingest-write-check.1a2b3c4d.tmp"  # a killed probe of earlier versions
    leftover.write_bytes(b"")
    archive.check_writable(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_stage_names_its_files_together_in_rank_order(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    stage = archive.Stage()
    stage.write(tmp_path / "a" / "post.md", b"post")  # written first, named last (default rank)
    stage.write(tmp_path / "b" / "record.json", b"record", rank=2)
    stage.write(tmp_path / "c" / "object.gz", b"object", temp_dir=tmp_path, rank=0)
    assert len(stage) == 3
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".tmp")]
    named: list[str] = []
    real_replace = Path.replace

    def replace(self: Path, target: Path) -> Path:
        done = real_replace(self, target)
        named.append(Path(target).name)
        return done

    monkeypatch.setattr(Path, "replace", replace)
    stage.commit()
    assert named == ["object.gz", "record.json", "post.md"]
    assert (tmp_path / "c" / "object.gz").read_bytes() == b"object" and len(stage) == 0
    assert not list(tmp_path.rglob("*.tmp"))
    stage.write(tmp_path / "a" / "post.md", b"never")
    stage.discard()
    assert (tmp_path / "a" / "post.md").read_bytes() == b"post" and not list(tmp_path.rglob("*.tmp"))
