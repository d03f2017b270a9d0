from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ingest import cli
from tests.loopback import Loopback

DATA = Path(__file__).parent / "data"
SHARED = Path(os.environ.get("INGEST_SHARED", Path(__file__).resolve().parents[2] / "shared"))
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"{SHARED} is absent: golden and corpus tests need ../shared (CI always has it)",
)
CORPUS = SHARED / "corpus"
needs_hugo = pytest.mark.skipif(shutil.which("hugo") is None,
                                reason="hugo is not installed (make test installs it)")


class Clock:
    """A settable UTC clock, injected wherever ingest asks for the time."""

    def __init__(self, start: datetime = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class Project:
    """A config file in a temp folder, and the archive and state beside it."""

    root: Path
    clock: Clock = field(default_factory=Clock)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def state_dir(self) -> Path:
        return self.root / ".ingest"

    def configure(self, feeds: list[dict[str, Any]], **settings: Any) -> None:
        data = {"images": False, "full_content": "never", "summary": "auto",
                "http": {"backoff": 0.01, "attempts": 3, "timeout": 5}, **settings, "feeds": feeds}
        self.config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    def run(self, *args: str, client: httpx.Client | None = None) -> tuple[int, str]:
        out = io.StringIO()
        code = cli.main(["--config", str(self.config), *(args or ("run",))], clock=self.clock, out=out,
                        client=client)
        return code, out.getvalue()

    def posts(self) -> dict[str, str]:
        return {p.relative_to(self.archive).as_posix(): p.read_text(encoding="utf-8")
                for p in sorted(self.archive.glob("*/*/*/*/index.md"))}

    def snapshot(self) -> dict[str, bytes]:
        return {p.relative_to(self.archive).as_posix(): p.read_bytes()
                for p in sorted(self.archive.rglob("*")) if p.is_file()}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def server() -> Iterator[Loopback]:
    with Loopback() as loopback:
        yield loopback


def front_matter(text: str) -> tuple[dict[str, Any], str]:
    """(front matter, body) of a post's text."""
    assert text.startswith("---\n")
    end = text.index("\n---\n", 3)
    return yaml.safe_load(text[4:end]), text[end + 5:]
