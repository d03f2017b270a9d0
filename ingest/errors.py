"""Every error `ingest` raises on purpose, one class per stage.

    IngestError
    ├── ConfigError        config.yaml is missing, unreadable or invalid      (run: exit 2)
    ├── LockError          another run holds the lock in state_dir             (run: exit 2)
    ├── StateError         the state database cannot be opened or written      (run: exit 2)
    ├── ArchiveError       a post cannot be written (permissions, disk full)   (run: exit 2)
    ├── FetchError         an HTTP request failed for good, after any retries  (that feed/entry)
    │   ├── HTTPStatusError   the server answered 4xx/5xx
    │   ├── TooLargeError     the body exceeds the configured cap
    │   ├── RefusedAddressError  a URL from feed content leads to a non-public address
    │   └── BlockedError      a WAF, captcha or security-check page answered
    ├── ParseError         the bytes are not a usable feed                     (that feed)
    │   └── NotAFeedError     an HTML page, JSON, an empty body, ...
    ├── ExtractError       an article page holds no article                    (that entry)
    └── SourceError        a kept source is missing or corrupt                 (rebuild: that post)

Errors of a single feed or entry end up in that feed's result and never stop
the run; only the run-level errors (config, lock, state, archive) abort it.
Every message names what failed and says what to do about it.
"""

from __future__ import annotations

from typing import Any


class IngestError(Exception):
    """Base of all errors raised on purpose by ingest."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as made, not by calling the class again with its message: a worker
        # process hands its errors back so (workqueue.Offload), and constructors differ.
        return _rebuilt, (type(self), self.args, self.__dict__)


def _rebuilt(kind: type[IngestError], args: tuple[Any, ...], attributes: dict[str, Any]) -> IngestError:
    error = kind.__new__(kind)
    error.args = args
    error.__dict__.update(attributes)
    return error


class ConfigError(IngestError):
    """The configuration cannot be used."""


class LockError(IngestError):
    """Another run is in progress."""


class StateError(IngestError):
    """The state database is unusable."""


class ArchiveError(IngestError):
    """The archive tree cannot be written."""


class FetchError(IngestError):
    """An HTTP request failed for good."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{message} ({url})")
        self.url = url


class HTTPStatusError(FetchError):
    """The server answered with an error status."""

    def __init__(self, url: str, status: int, hint: str) -> None:
        super().__init__(url, f"HTTP {status}: {hint}")
        self.status = status


class TooLargeError(FetchError):
    """The response body is larger than allowed."""


class RefusedAddressError(FetchError):
    """A URL taken from a feed or page resolves to a loopback, private or reserved address."""


class BlockedError(FetchError):
    """A bot wall answered instead of the content: never parse or archive it."""

    def __init__(self, url: str, message: str, wall: str = "a bot wall") -> None:
        super().__init__(url, message)
        self.wall = wall


class ParseError(IngestError):
    """The bytes are not a usable feed."""


class NotAFeedError(ParseError):
    """The body is something else than RSS or Atom."""


class ExtractError(IngestError):
    """An article page does not hold the article."""


class SourceError(IngestError):
    """What a post was made from cannot be read back (`ingest rebuild`)."""
