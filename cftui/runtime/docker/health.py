"""Is a service answering? Small async probes, run from the host against
a container's address (on Linux the host reaches every bridge network,
internal ones included), so a stack is known healthy as soon as it is,
without waiting for Docker's own healthcheck interval."""

from __future__ import annotations

import asyncio
import contextlib

PROBE_TIMEOUT_S = 1.0


async def http_status(host: str, port: int, path: str, timeout: float = PROBE_TIMEOUT_S) -> int:
    """The status of `GET path`, or 0 when nothing answers with HTTP."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
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
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def tcp_open(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def gateway_ready(host: str, port: int) -> bool:
    """CONTRACTS §4: `/readyz`, then `/health`, then a TCP connect (an older
    OpenClaw answers only WebSocket RPC on its port)."""
    status = await http_status(host, port, "/readyz")
    if status == 200:
        return True
    if status not in (0, 404, 405):
        return False  # it knows /readyz and says not yet
    if status == 0 and not await tcp_open(host, port):
        return False
    status = await http_status(host, port, "/health")
    if status == 200:
        return True
    # Something listens but knows neither path (or speaks no HTTP): the TCP
    # connect above is the last resort.
    return status in (0, 404, 405)


async def service_ready(service: str, host: str, port: int) -> bool:
    if service == "gateway":
        return await gateway_ready(host, port)
    if service == "llm-proxy":
        return await http_status(host, port, "/health") == 200
    if service == "front":
        return await http_status(host, port, "/cf-front/health") == 200
    return await tcp_open(host, port)
