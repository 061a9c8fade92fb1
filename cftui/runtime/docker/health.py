"""Is a service answering? Small async probes, run from the host against
a container's address (on Linux the host reaches every bridge network,
internal ones included), so a stack is known healthy as soon as it is,
without waiting for Docker's own healthcheck interval.

On another host the probe is opened by that host (`Opener`: its SSH link's
direct-tcpip), which alone reaches its bridges and its loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

PROBE_TIMEOUT_S = 1.0

# (host, port) -> (reader, writer): asyncio's own, or a host link's.
Opener = Callable[[str, int], Awaitable[tuple[Any, Any]]]


async def http_status(
    host: str,
    port: int,
    path: str,
    timeout: float = PROBE_TIMEOUT_S,
    opener: Opener | None = None,
) -> int:
    """The status of `GET path`, or 0 when nothing answers with HTTP."""
    opener = opener or asyncio.open_connection
    try:
        reader, writer = await asyncio.wait_for(opener(host, port), timeout)
    except (OSError, TimeoutError):
        return 0
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.split()
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    except (OSError, TimeoutError, ValueError):
        return 0
    finally:
        await _close(writer)


async def _close(writer: Any) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


async def tcp_open(
    host: str, port: int, timeout: float = PROBE_TIMEOUT_S, opener: Opener | None = None
) -> bool:
    opener = opener or asyncio.open_connection
    try:
        _, writer = await asyncio.wait_for(opener(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    await _close(writer)
    return True


async def gateway_ready(host: str, port: int, opener: Opener | None = None) -> bool:
    """CONTRACTS §4: `/readyz`, then `/health`, then a TCP connect (an older
    OpenClaw answers only WebSocket RPC on its port)."""
    status = await http_status(host, port, "/readyz", opener=opener)
    if status == 200:
        return True
    if status not in (0, 404, 405):
        return False  # it knows /readyz and says not yet
    if status == 0 and not await tcp_open(host, port, opener=opener):
        return False
    status = await http_status(host, port, "/health", opener=opener)
    if status == 200:
        return True
    # Something listens but knows neither path (or speaks no HTTP): the TCP
    # connect above is the last resort.
    return status in (0, 404, 405)


async def service_ready(service: str, host: str, port: int, opener: Opener | None = None) -> bool:
    if service == "gateway":
        return await gateway_ready(host, port, opener)
    if service == "llm-proxy":
        return await http_status(host, port, "/health", opener=opener) == 200
    if service == "front":
        return await http_status(host, port, "/cf-front/health", opener=opener) == 200
    return await tcp_open(host, port, opener=opener)
