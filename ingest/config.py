"""Load config.yaml into one frozen, validated Config.

Every problem is reported with the path of the key at fault, the way a user
would point at it in the file: ``feeds[2].url: not a URL``.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ingest import locations
from ingest.errors import ConfigError
from ingest.locations import ARCHIVE_DIR, STATE_DIR

FullContent = Literal["auto", "always", "never"]
ImageFormat = Literal["original", "webp"]
SummaryMode = Literal["auto", "extractive", "llm", "none"]

# The static keys of the sample post, in its order: used when front_matter is absent.
SAMPLE_FRONT_MATTER: dict[str, Any] = {
    "author": ["g0f"],
    "tags": ["read"],
    "draft": False,
    "comments": True,
    "reward": True,
    "mermaid": True,
    "showToc": True,
    "TocOpen": True,
    "hidemeta": False,
    "disableShare": True,
    "showbreadcrumbs": True,
    "cover": {"image": "/hugo-logo-wide.svg", "alt": "果粉圈", "relative": False},
}
# Keys every post writes itself; static front matter may not override them.
GENERATED_KEYS = ("title", "categories", "date", "lastmod", "canonicalURL", "ingest")


_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ValueError("not a URL")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Feed(_Strict):
    name: str = Field(min_length=1)
    url: str
    full_content: FullContent | None = None
    images: bool | None = None
    summary: SummaryMode | None = None
    image_max_width: int | None = Field(default=None, gt=0)
    image_format: ImageFormat | None = None

    _url = field_validator("url")(check_url)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if value != value.strip() or any(c in value for c in "\n\r\t"):
            raise ValueError("must be a single line without surrounding spaces")
        return value


class Kr36Source(_Strict):
    site: str = "https://36kr.com"
    gateway: str = "https://gateway.36kr.com"
    delay: float = Field(default=1.0, ge=0)

    _urls = field_validator("site", "gateway")(check_url)


class Sources(_Strict):
    kr36: Kr36Source = Field(default_factory=Kr36Source, alias="36kr")

    model_config = ConfigDict(populate_by_name=True)


class SummaryLLM(_Strict):
    base_url: str  # an OpenAI-compatible API, e.g. https://api.openai.com/v1
    model: str = Field(min_length=1)
    api_key_env: str = "OPENAI_API_KEY"
    max_per_run: int = Field(default=50, ge=0)
    max_chars: int = Field(default=8000, gt=0)

    _url = field_validator("base_url")(check_url)


class Http(_Strict):
    timeout: float = Field(default=30.0, gt=0)
    attempts: int = Field(default=4, ge=1, le=10)
    backoff: float = Field(default=1.0, gt=0)
    retry_budget: float = Field(default=120.0, gt=0)
    max_retry_after: float = Field(default=60.0, ge=0)
    max_feed_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_page_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    per_host: int = Field(default=2, ge=1)
    workers: int = Field(default=8, ge=1, le=64)
    user_agent: str | None = None
    deadline: float | None = Field(default=None, gt=0)  # None: 4 × timeout
    allow_private: tuple[str, ...] = Field(default=(), strict=False)

    @field_validator("allow_private")
    @classmethod
    def _hosts_or_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                if not _HOST_NAME.match(item):
                    raise ValueError(f"{item!r} is neither a host name nor an address or CIDR") from None
        return value

    @property
    def request_deadline(self) -> float:
        """Seconds one whole request may take (connect, headers, body)."""
        return self.deadline or 4 * self.timeout


class Config(_Strict):
    archive_dir: Path = ARCHIVE_DIR
    state_dir: Path = STATE_DIR
    # What posts were made from (ingest.kept); default: `sources` beside archive_dir.
    sources_dir: Path | None = None
    keep_sources: bool = True
    images: bool = True
    image_max_width: int | None = Field(default=None, gt=0)  # pixels; None keeps originals
    image_format: ImageFormat = "original"
    full_content: FullContent = "auto"
    summary: SummaryMode = "auto"
    cover: Literal["static", "article"] = "static"
    summary_llm: SummaryLLM | None = None
    feeds: tuple[Feed, ...] = Field(strict=False)  # YAML gives a list
    front_matter: dict[str, Any] = Field(default_factory=lambda: dict(SAMPLE_FRONT_MATTER))
    sources: Sources = Field(default_factory=Sources)
    http: Http = Field(default_factory=Http)

    @field_validator("archive_dir", "state_dir", "sources_dir", mode="before")
    @classmethod
    def _path(cls, value: object) -> object:
        if isinstance(value, str) and value.strip():
            return Path(value)
        if isinstance(value, Path):
            return value
        raise ValueError("must be a non-empty path")

    @field_validator("feeds")
    @classmethod
    def _some_feeds(cls, value: tuple[Feed, ...], info: ValidationInfo) -> tuple[Feed, ...]:
        if not value and not (info.context or {}).get("no_feeds_yet"):
            raise ValueError("no feed: add one (name, url), or import some: ingest feeds import FILE.opml")
        return value

    @field_validator("front_matter")
    @classmethod
    def _no_generated_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        taken = [k for k in value if k in GENERATED_KEYS]
        if taken:
            raise ValueError(f"{', '.join(taken)}: written by ingest, remove from front_matter")
        return value

    @model_validator(mode="after")
    def _llm_configured(self) -> Config:
        uses_llm = self.summary == "llm" or any(f.summary == "llm" for f in self.feeds)
        if uses_llm and self.summary_llm is None:
            raise ValueError("summary_llm: required when summary is llm (base_url, model)")
        return self

    @model_validator(mode="after")
    def _unique_feeds(self) -> Config:
        seen: dict[str, int] = {}
        for i, feed in enumerate(self.feeds):
            for label, value in (("name", feed.name), ("url", feed.url)):
                first = seen.setdefault(f"{label}:{value}", i)
                if first != i:
                    raise ValueError(f"feeds[{i}].{label}: same as feeds[{first}].{label}")
        return self

    @property
    def kept_sources(self) -> Path | None:
        """Where what posts are made from is kept; None when `keep_sources` is off."""
        if not self.keep_sources:
            return None
        return self.sources_dir or self.archive_dir.parent / "sources"

    def named_hosts(self) -> set[str]:
        """The hosts config.yaml names: its feeds, its sources, the LLM endpoint."""
        urls = [f.url for f in self.feeds] + [self.sources.kr36.site, self.sources.kr36.gateway]
        if self.summary_llm is not None:
            urls.append(self.summary_llm.base_url)
        return {urlsplit(u).hostname or "" for u in urls} - {""}

    def for_feed(self, feed: Feed) -> FeedSettings:
        return FeedSettings(
            feed=feed,
            full_content=feed.full_content or self.full_content,
            images=self.images if feed.images is None else feed.images,
            summary=feed.summary or self.summary,
            image_max_width=feed.image_max_width or self.image_max_width,
            image_format=feed.image_format or self.image_format,
        )


class FeedSettings(BaseModel):
    """A feed with the global defaults filled in."""

    model_config = ConfigDict(frozen=True)

    feed: Feed
    full_content: FullContent
    images: bool
    summary: SummaryMode
    image_max_width: int | None = None
    image_format: ImageFormat = "original"


def load_config(path: Path, *, no_feeds_yet: bool = False) -> Config:
    """Read and validate `path`; relative directories resolve against its folder.

    `no_feeds_yet` accepts an empty feed list (for the commands that fill it).
    """
    text = locations.read(path)
    try:
        raw = yaml.load(text, Loader=_UniqueKeys)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    config = parse_config(raw, where=str(path), no_feeds_yet=no_feeds_yet)
    archive_dir = locations.beside(path, config.archive_dir)
    state_dir = locations.beside(path, config.state_dir)
    sources_dir = locations.beside(path, config.sources_dir) if config.sources_dir \
        else archive_dir.parent / "sources"
    # The state inside the archive would be published with it; the archive inside the
    # state would be lost with a cache. Sources inside the archive would be published
    # as pages' files; inside the state, lost with it.
    for name, folder in (("state_dir", state_dir), ("sources_dir", sources_dir)):
        if archive_dir.is_relative_to(folder) or folder.is_relative_to(archive_dir):
            raise ConfigError(f"{path}: archive_dir ({archive_dir}) and {name} ({folder}) must be "
                              "apart, neither inside the other")
    if sources_dir.is_relative_to(state_dir) or state_dir.is_relative_to(sources_dir):
        raise ConfigError(f"{path}: sources_dir ({sources_dir}) and state_dir ({state_dir}) must be "
                          "apart, neither inside the other")
    return config.model_copy(update={"archive_dir": archive_dir, "state_dir": state_dir,
                                     "sources_dir": sources_dir})


class _UniqueKeys(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML's safe loader (libyaml's when there), refusing a key given twice: YAML
    would keep the last one silently, and half a config would vanish."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return dict(super().construct_mapping(node, deep=deep))


def parse_config(raw: dict[str, Any], where: str = "config", *, no_feeds_yet: bool = False) -> Config:
    try:
        return Config.model_validate(raw, context={"no_feeds_yet": no_feeds_yet})
    except ValidationError as exc:
        problems = "\n".join(f"  {_describe(err)}" for err in exc.errors())
        raise ConfigError(f"{where}: invalid configuration:\n{problems}") from None


_TYPE_NAMES = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
}


def _describe(err: Any) -> str:
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    kind = err["type"]
    if kind == "missing":
        message = "missing (required key)"
    elif kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "value_error":
        message = str(err["ctx"]["error"])
        if message.startswith(("feeds[", "summary_llm")):  # a whole-config check names its own key
            return message
    elif kind in _TYPE_NAMES:
        message = f"expected {_TYPE_NAMES[kind]}, got {type(err['input']).__name__}"
    elif kind == "literal_error":
        message = f"must be one of {err['ctx']['expected']}"
    else:
        message = str(err["msg"]).replace("Input should be", "must be")
    return f"{loc or '(top level)'}: {message}"
