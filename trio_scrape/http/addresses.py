"""Where a crawl may connect: a guard against pages that point the crawler at the machine's
own network (loopback, private ranges, link-local cloud metadata).

The check runs on the addresses a host name *resolves to*, just before connecting to them, so a
name that resolves to 127.0.0.1 (or changes its answer between two lookups: DNS rebinding)
cannot get around it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

import httpx
import trio

__all__ = [
    "AddressGuard",
    "BlockedAddress",
    "Resolver",
    "is_public",
    "resolve",
]

#: ``resolver(host, port)`` -> the IP addresses to try, in order.
Resolver = Callable[[str, int], Awaitable[list[str]]]


class BlockedAddress(httpx.ConnectError):
    """Every address of a host is one the crawl may not reach; nothing was sent."""


def is_public(address: str) -> bool:
    """Whether an IP address is globally routable: not loopback (127/8, ::1), private (10/8,
    172.16/12, 192.168/16, fc00::/7), link-local (169.254/16 with the cloud metadata address,
    fe80::/10), shared (100.64/10), unspecified, reserved, documentation or multicast. An
    IPv4 address inside IPv6 (``::ffff:127.0.0.1``, 6to4, Teredo) is judged as IPv4."""
    ip = ipaddress.ip_address(address.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip.packed[:12] == bytes(12):  # IPv4-compatible ::a.b.c.d
            embedded = ipaddress.IPv4Address(ip.packed[12:])
        if embedded is not None:
            return is_public(str(embedded)) and ip.is_global
    return ip.is_global and not ip.is_multicast


class AddressGuard:
    """Permits connections to public addresses, and to any address for the origins in
    ``allowed_origins`` (``scheme://host[:port]``, the seeds': crawling a site on your own
    network is a choice, being sent there by a link or a redirect is not, and neither is
    another port of the same host, where a developer's own app may listen).
    ``allow_private`` turns it off."""

    def __init__(self, allowed_origins: Iterable[str] = (), *, allow_private: bool = False) -> None:
        self.allowed_origins = frozenset(allowed_origins)
        self.allow_private = allow_private

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """The hosts of the allowed origins (for a browser's resolver, which knows no ports;
        its requests are still checked by origin)."""
        hosts = set()
        for origin in self.allowed_origins:
            netloc = origin.partition("://")[2]
            if netloc.startswith("["):
                hosts.add(netloc[1 : netloc.find("]")])
            else:
                hosts.add(netloc.partition(":")[0])
        return frozenset(hosts)

    def permits(self, origin: str, address: str) -> bool:
        """Whether a connection for ``origin`` (as :func:`origin_text` writes it) may go to
        ``address``."""
        return self.allow_private or origin in self.allowed_origins or is_public(address)

    def check(self, origin: str, addresses: list[str]) -> list[str]:
        """The addresses of ``origin``'s host it may connect to.

        Raises:
            BlockedAddress: none of them.
        """
        allowed = [a for a in addresses if self.permits(origin, a)]
        if not allowed:
            shown = ", ".join(addresses[:3])
            raise BlockedAddress(
                f"{origin} resolves to {shown}: not a public address, refused "
                "(it is not a seed's origin; --allow-private permits it)"
            )
        return allowed


async def resolve(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (an IP literal resolves to itself).

    Raises:
        OSError: the name does not resolve.
    """
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
