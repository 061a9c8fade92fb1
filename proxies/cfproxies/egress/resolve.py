"""Where a connection may go: a name's addresses, checked against the allowlist.

A name that passes the allowlist is only half an answer: its DNS record may
point inside (loopback, the Docker network, the cloud metadata address), and
may change between our check and mitmproxy's own lookup (DNS rebinding). So
the addon resolves the name itself, keeps the addresses that are public or
listed, and has mitmproxy connect to the first of them: the address checked
is the address used. Standard library only (tested from cftui's venv too).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cfproxies.egress.patterns import Allowlist, ip_literal, is_public_address, normalise_host

Resolver = Callable[[str, int], Awaitable[list[str]]]
CACHE_SECONDS = 10.0  # one lookup serves the CONNECT, its server connect and requests
CACHE_SIZE = 1024


async def system_resolve(host: str, port: int) -> list[str]:
    """The system resolver's addresses for `host`, in its order, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Route:
    """The address to connect to, or why there is none."""

    host: str
    port: int
    address: str | None
    inner: tuple[str, ...] = ()  # addresses refused: not public and not listed
    error: str | None = None  # the lookup failed

    @property
    def refused(self) -> bool:
        return self.address is None and self.error is None


class Router:
    """Resolves names (cached briefly) and picks an address the allowlist admits."""

    def __init__(self, resolve: Resolver | None = None) -> None:
        self.resolve = resolve or system_resolve
        self._cache: dict[str, tuple[float, list[str]]] = {}

    async def _addresses(self, host: str, port: int) -> list[str]:
        now = time.monotonic()
        hit = self._cache.get(host)
        if hit is not None and hit[0] > now:
            return hit[1]
        addresses = await self.resolve(host, port)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[host] = (now + CACHE_SECONDS, addresses)
        return addresses

    async def route(self, allowlist: Allowlist, host: str, port: int) -> Route:
        """The first address of `host` that is public or listed for `port`.

        The caller has already checked `host` itself against the allowlist;
        an IP literal is its own (canonical) address.
        """
        name = normalise_host(host)
        literal = ip_literal(name)
        if literal is not None:
            return Route(name, port, literal)
        try:
            addresses = await self._addresses(name, port)
        except (OSError, UnicodeError) as exc:
            return Route(name, port, None, error=str(exc) or type(exc).__name__)
        if not addresses:
            return Route(name, port, None, error="no address")
        inner: list[str] = []
        for addr in addresses:
            bare = addr.split("%", 1)[0]
            if is_public_address(bare) or allowlist.check(bare, port).allowed:
                return Route(name, port, bare, tuple(inner))
            inner.append(bare)
        return Route(name, port, None, tuple(inner))
