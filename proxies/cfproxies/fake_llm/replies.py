"""How the fake answers: a JSON body (gzipped, or without a length, when
asked), or a stream of frames paced, dropped or hung as the knobs say."""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from cfproxies.fake_llm.knobs import Knobs


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def sse_event(event: str | None, obj: Any) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {dumps(obj)}\n\n".encode()


async def json_reply(
    request: web.Request, knobs: Knobs, status: int, payload: Any, headers: dict[str, str]
) -> web.StreamResponse:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **headers}
    if knobs.gzip:
        body = zlib.compress(body, wbits=31)  # wbits=31: the gzip wrapper
        headers["Content-Encoding"] = "gzip"
    if knobs.no_length:
        resp = web.StreamResponse(status=status, headers=headers)
        await resp.prepare(request)
        half = len(body) // 2
        await resp.write(body[:half])
        await resp.write(body[half:])
        await resp.write_eof()
        return resp
    return web.Response(status=status, body=body, headers=headers)


async def stream_reply(
    request: web.Request,
    knobs: Knobs,
    events: Callable[[], AsyncIterator[bytes]],
    headers: dict[str, str],
    entry: dict[str, Any],
    content_type: str = "text/event-stream",
) -> web.StreamResponse:
    headers = {"Content-Type": content_type, "Cache-Control": "no-cache", **headers}
    gz = None
    if knobs.gzip:
        gz = zlib.compressobj(wbits=31)
        headers["Content-Encoding"] = "gzip"
    resp = web.StreamResponse(status=200, headers=headers)
    await resp.prepare(request)
    try:
        async for frame in events():
            data = frame
            if gz is not None:
                data = gz.compress(frame) + gz.flush(zlib.Z_SYNC_FLUSH)
            await resp.write(data)
        if gz is not None:
            await resp.write(gz.flush())
        await resp.write_eof()
        entry["outcome"] = "completed"
    except Drop:
        entry["outcome"] = "dropped"
        if request.transport is not None:
            request.transport.abort()
    except (asyncio.CancelledError, ConnectionResetError):
        entry["outcome"] = "client_closed"
        raise
    return resp


class Drop(Exception):
    """x-fake-drop-after: break the connection mid-stream."""


async def pace(knobs: Knobs, index: int) -> None:
    """Between pieces: the gap, and the drop/hang behaviours."""
    if knobs.drop_after is not None and index >= knobs.drop_after:
        raise Drop
    if knobs.hang_after is not None and index >= knobs.hang_after:
        await asyncio.Event().wait()
    if knobs.gap_s and index:
        await asyncio.sleep(knobs.gap_s)


def stamp(knobs: Knobs, obj: dict[str, Any]) -> dict[str, Any]:
    if knobs.stamp:
        obj["fake_ts"] = time.time()
    return obj
