from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from ingest import cli
from ingest.config import SAMPLE_FRONT_MATTER, load_config, parse_config
from ingest.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
FEED = {"name": "36krai", "url": "https://www.36kr.com/feed"}


def error_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return str(caught.value)


def test_the_shipped_config_is_valid_and_has_the_samples_front_matter() -> None:
    config = load_config(ROOT / "config.yaml")
    assert config.front_matter == SAMPLE_FRONT_MATTER
    assert config.feeds[0].url == "https://www.36kr.com/feed"
    assert config.archive_dir == ROOT / "archive" and config.state_dir == ROOT / ".ingest"


def test_defaults() -> None:
    config = parse_config({"feeds": [FEED]})
    assert (config.images, config.full_content, config.summary) == (True, "auto", "auto")
    assert config.front_matter == SAMPLE_FRONT_MATTER
    assert config.sources.kr36.delay == 1.0 and config.sources.kr36.site == "https://36kr.com"
    settings = config.for_feed(config.feeds[0])
    assert (settings.images, settings.full_content, settings.summary) == (True, "auto", "auto")


def test_per_feed_overrides() -> None:
    config = parse_config({"images": True, "feeds": [{**FEED, "images": False, "full_content": "never",
                                                      "summary": "none"}]})
    settings = config.for_feed(config.feeds[0])
    assert (settings.images, settings.full_content, settings.summary) == (False, "never", "none")


@pytest.mark.parametrize(("raw", "message"), [
    ({"feeds": [FEED, FEED | {"name": "b"}, {"name": "c", "url": "nope"}]}, "feeds[2].url: not a URL"),
    ({"feeds": [FEED | {"bogus": 1}]}, "feeds[0].bogus: unknown key"),
    ({"feeds": [FEED], "imagez": True}, "imagez: unknown key"),
    ({"feeds": [{"name": "x"}]}, "feeds[0].url: missing"),
    ({}, "feeds: missing"),
    ({"feeds": []}, "feeds: no feed: add one"),
    ({"feeds": [FEED], "images": "yes"}, "images: expected true or false, got str"),
    ({"feeds": "https://x.example"}, "feeds: expected a list, got str"),
    ({"feeds": [FEED], "full_content": "sometimes"}, "full_content: must be one of"),
    ({"feeds": [FEED], "summary": "gpt"}, "summary: must be one of"),
    ({"feeds": [FEED, FEED]}, "feeds[1].name: same as feeds[0].name"),
    ({"feeds": [FEED], "front_matter": {"title": "x"}}, "front_matter: title: written by ingest"),
    ({"feeds": [FEED], "sources": {"36kr": {"delay": -1}}}, "sources.36kr.delay: must be greater"),
    ({"feeds": [FEED], "sources": {"36kr": {"site": "36kr.com"}}}, "sources.36kr.site: not a URL"),
    ({"feeds": [FEED | {"url": "ftp://x.example/feed"}]}, "feeds[0].url: not a URL"),
])
def test_invalid_configs_name_the_key(raw: dict[str, Any], message: str) -> None:
    assert message in error_of(raw)


def test_bad_config_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("feeds:\n  - name: a\n    url: https://a.example/f\n  - name: b\n"
                    "    url: https://b.example/f\n  - name: c\n    url: not-a-url\n")
    assert cli.main(["--config", str(path), "run"]) == 2
    assert "feeds[2].url: not a URL" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "message"), [
    ("feeds: [", "not valid YAML"),
    ("- a\n- b\n", "mapping"),
    # What would lose settings (YAML keeps the last of two keys) or posts (the state
    # published with the archive, or the archive thrown away with a cache).
    ("feeds: [{name: a, url: 'https://a.example/'}]\nimages: true\nimages: false\n",
     "the key 'images' is given twice"),
    ("feeds:\n  - name: a\n    url: https://a.example/\n    name: b\n", "the key 'name' is given twice"),
    ("archive_dir: data/archive\nstate_dir: data\nfeeds: [{name: a, url: 'https://a.example/'}]\n",
     "must be apart"),
    ("archive_dir: .\nfeeds: [{name: a, url: 'https://a.example/'}]\n", "must be apart"),
    ("archive_dir: x\nstate_dir: x/\nfeeds: [{name: a, url: 'https://a.example/'}]\n", "must be apart"),
])
def test_unusable_config_exits_2(tmp_path: Path, text: str, message: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert cli.main(["--config", str(path), "run"]) == 2
    assert message in capsys.readouterr().err


def test_missing_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--config", str(tmp_path / "nope.yaml"), "run"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "config.yaml"
    path.write_text("archive_dir: out\nstate_dir: ../state\nfeeds:\n  - name: a\n    url: https://a.example/\n")
    config = load_config(path)
    assert config.archive_dir == (tmp_path / "sub" / "out").resolve()
    assert config.state_dir == (tmp_path / "state").resolve()


def test_feeds_commands_accept_a_config_without_feeds_yet(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("feeds: []\n")
    assert cli.main(["--config", str(path), "feeds", "list"], out=io.StringIO()) == 0
