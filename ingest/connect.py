"""Where a request may connect, and for how long: the network layer under httpx.

Two rules that no HTTP-level check can enforce, so they live where sockets
are opened and read (an httpcore network backend, used by `fetch.make_client`):

* **Addresses.** A host that config.yaml names (a feed, a source, the LLM
  endpoint) or that `http.allow_private` lists is trusted. Any other host —
  one taken from a feed or a page: article links, images, covers, every
  redirect — is resolved once, and refused when an address it resolves to is
  loopback, private, link-local, reserved, multicast or unspecified, unless
  `http.allow_private` lists a network holding it. The socket connects to the
  very address that was checked, so a DNS answer that changes between the
  check and the connection (rebinding) cannot get around it.
* **Deadlines.** Every request has a total deadline (connect, headers, body)
  set by the fetcher around it. Each read and write is bounded by what is left
  of it, so a server that trickles a byte a second, in the headers or the
  body, ends with a timeout instead of holding the run forever.

A name that does not resolve is final for this run: retrying cannot help.
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
import ssl
import time
import typing
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SocketOption = typing.Any  # httpcore's own alias is private

_deadline: contextvars.ContextVar[tuple[float, float] | None] = contextvars.ContextVar(
    "ingest_deadline", default=None)


class UnresolvedHost(Exception):
    """The host name does not resolve (no retry within the run can change that)."""


class RefusedAddress(Exception):
    """A host not named in config resolves to an address that is not public."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound every socket operation of the request made inside this block."""
    token = _deadline.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _deadline.reset(token)


def _remaining(timeout: float | None) -> float | None:
    """The time an operation may take: its own timeout, within the request's deadline."""
    current = _deadline.get()
    if current is None:
        return timeout
    end, total = current
    left = end - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout(f"no complete answer within the deadline of {total:g} s")
    return left if timeout is None else min(timeout, left)


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    trusted_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_config(cls, config_hosts: Iterable[str], allow_private: Iterable[str]) -> AddressPolicy:
        """Hosts of config.yaml's URLs, and `http.allow_private` (host names or CIDRs)."""
        hosts, networks = {h.lower() for h in config_hosts if h}, []
        for item in allow_private:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.lower())
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        return (host.lower() in self.trusted_hosts or is_public(address)
                or any(address in network for network in self.allowed_networks))

    def check(self, host: str, addresses: Iterable[IPAddress]) -> None:
        """Raise RefusedAddress if `host`, at any of `addresses`, may not be reached."""
        refused = next((a for a in addresses if not self.allows(host, a)), None)
        if refused is not None:
            literal = str(refused) == host.strip("[]")
            where = f"is {host}" if literal else f"{host} resolves to {refused}"
            raise RefusedAddress(f"{where}, a non-public address: not fetched for a URL from feed "
                                 "content (allow it with http.allow_private)")

    def check_literal(self, host: str) -> None:
        """Refuse `host` if it is itself a non-public address: all that can be checked of a
        request a proxy will resolve and connect."""
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return
        self.check(host, [address])


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's synchronous sockets, with the address policy and the deadline applied."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[SocketOption] | None = None) -> httpcore.NetworkStream:
        addresses = self._resolve(host, port)
        self._policy.check(host, addresses)
        error: Exception | None = None
        for address in addresses:  # as socket.create_connection does, but on checked addresses
            try:
                stream = self._inner.connect_tcp(str(address), port, _remaining(timeout),
                                                 local_address, socket_options)
                return _DeadlineStream(stream)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"no address to connect to for {host}")

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[SocketOption] | None = None
                            ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)

    @staticmethod
    def _resolve(host: str, port: int) -> list[IPAddress]:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UnresolvedHost(f"cannot resolve the host name {host!r} ({exc}); check the URL and "
                                 "the network's DNS") from None
        unique: dict[IPAddress, None] = {}
        for _family, _kind, _proto, _name, sockaddr in found:
            unique[ipaddress.ip_address(str(sockaddr[0]).split("%")[0])] = None
        return list(unique)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname,
                                                     _remaining(timeout)))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)
