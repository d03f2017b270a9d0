"""Where a config file puts the archive and the state, read without the rest.

`ingest search` must cost little more than starting Python: it reads these two
keys only, and leaves validating the whole file (pydantic, ~0.1 s) to the
commands that use it.
"""

from __future__ import annotations

from pathlib import Path

ARCHIVE_DIR = Path("archive")
STATE_DIR = Path(".ingest")
SEARCH_INDEX = "search.sqlite3"  # in the state folder; a run looks for it before loading search
# Beside it when a run could not index its posts: the next search builds the index again.
SEARCH_STALE = f"{SEARCH_INDEX}.stale"


def read(config_file: Path) -> str:
    """The text of `config_file`; ConfigError, saying what to do, when there is none."""
    from ingest.errors import ConfigError

    try:
        return config_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{config_file}: no such file (pass --config PATH)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_file}: cannot read: {exc}") from None


def beside(config_file: Path, folder: Path | str) -> Path:
    """`folder` as config.yaml means it: relative to the file's own folder."""
    return (config_file.resolve().parent / folder).resolve()


def locations(config_file: Path) -> tuple[Path, Path]:
    """(archive_dir, state_dir) of `config_file`, resolved against its folder."""
    import yaml

    from ingest.errors import ConfigError

    try:
        raw = yaml.load(read(config_file), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_file}: cannot read: {exc}") from None
    raw = raw if isinstance(raw, dict) else {}
    return (beside(config_file, str(raw.get("archive_dir") or ARCHIVE_DIR)),
            beside(config_file, str(raw.get("state_dir") or STATE_DIR)))
