"""A fleet home with bots, the controller on loopback (real aiohttp, real
files, real git; the in-memory runtime where a Docker stack would be), and a
receiver on loopback that records what the controller sends out."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cftui.botinit import init_bot
from cftui.controller import settings as controller_settings
from cftui.controller.clock import Clock
from cftui.controller.service import Controller, ServeOptions
from cftui.fleet import FleetHome
from tests.fakes.memory_runtime import MemoryRuntime, MemoryRuntimes

BOTS = ("alpha", "beta")


@pytest.fixture
def fleet(home: FleetHome) -> FleetHome:
    for bot in BOTS:
        init_bot(home, bot)
    return home


@pytest.fixture
def runtime(fleet: FleetHome) -> MemoryRuntime:
    return MemoryRuntime(fleet, running=BOTS)


@dataclass
class Running:
    controller: Controller
    base: str
    session: aiohttp.ClientSession
    lines: list[str]

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        async with self.session.post(self.base + path, data=body, headers=headers) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text


@pytest.fixture
async def start_controller(
    fleet: FleetHome, runtime: MemoryRuntime
) -> AsyncIterator[Callable[..., Any]]:
    """An async factory: `await start_controller(clock, **ServeOptions fields)`;
    every controller it started is stopped after the test."""
    started: list[Running] = []

    async def start(clock: Clock | None = None, **options: Any) -> Running:
        opts = ServeOptions(listen="127.0.0.1:0", **options)
        lines: list[str] = []
        c = Controller(
            fleet,
            controller_settings.load(fleet),
            opts,
            MemoryRuntimes(fleet, runtime),
            clock or Clock(),
            say=lines.append,
        )
        await c.start()
        host, port = c.bound[0]
        r = Running(c, f"http://{host}:{port}", aiohttp.ClientSession(), lines)
        started.append(r)
        return r

    yield start
    for r in started:
        await r.session.close()
        await r.controller.aclose()


@dataclass
class Receiver:
    """An HTTP endpoint on loopback that keeps every request it gets."""

    url: str
    got: list[tuple[dict[str, str], bytes, float]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _h, body, _t in self.got]

    async def wait_for(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for e in self.events():
                if e["event"] == kind:
                    return e
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no {kind} event; got {[e['event'] for e in self.events()]}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    loop = asyncio.get_running_loop()
    rec = Receiver("")

    async def handle(request: web.Request) -> web.Response:
        rec.got.append((dict(request.headers), await request.read(), loop.time()))
        rec.arrived.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.url = f"http://{host}:{port}/hook"
    yield rec
    await runner.cleanup()


def verify_signature(secret: bytes, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does with X-ClawFactory-Timestamp and -Signature."""
    ts = headers["X-ClawFactory-Timestamp"]
    mac = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-ClawFactory-Signature"], "sha256=" + mac)
