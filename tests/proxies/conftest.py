"""Fixtures for the proxy tests: the fake provider and the LLM proxy, each a
real aiohttp server on a loopback port, and a client to call them with."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cfproxies.fake_llm import make_app as make_fake_app
from cfproxies.llm_proxy import ProxyConfig, load_config, make_app
from cfproxies.llm_proxy.app import STATE
from cfproxies.record import parse_record_line

from tests.proxies.proxyhelpers import PROVIDERS_ENV, TOKEN, check_record_shape, start_site


@dataclass
class Fake:
    url: str
    app: web.Application

    def requests(self) -> list[dict[str, Any]]:
        from cfproxies.fake_llm.app import STATE as FAKE_STATE

        return list(self.app[FAKE_STATE].requests)


@dataclass
class Proxy:
    url: str
    config: ProxyConfig
    app: web.Application
    runner: web.AppRunner | None = None

    async def stop(self) -> None:
        """Stop it as SIGTERM does (its calls drained, its files closed)."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def log_path(self) -> Path:
        return self.config.traffic_log

    def lines(self) -> list[dict[str, Any]]:
        """Every line of the log, start lines included."""
        try:
            lines = self.log_path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        # Torn lines are skipped, as every reader does (one test plants one).
        records = [r for r in (parse_record_line(line) for line in lines) if r is not None]
        for rec in records:
            check_record_shape(rec)
        return records

    def records(self) -> list[dict[str, Any]]:
        """The whole-call records (the end lines), in order."""
        return [r for r in self.lines() if r.get("phase") != "start"]

    def starts(self) -> list[dict[str, Any]]:
        return [r for r in self.lines() if r.get("phase") == "start"]

    async def wait_records(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The records once there are `n` of them (a record follows its response)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            recs = self.records()
            if len(recs) >= n or loop.time() > deadline:
                return recs
            await asyncio.sleep(0.01)

    @property
    def state(self):
        return self.app[STATE]


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    app = make_fake_app()
    runner, url = await start_site(app)
    yield Fake(url, app)
    await runner.cleanup()


@pytest.fixture
def audit_dir(tmp_path: Path) -> Path:
    path = tmp_path / "audit" / "bot1"
    path.mkdir(parents=True, mode=0o700)
    return path


@pytest.fixture
def providers_env(tmp_path: Path) -> Path:
    path = tmp_path / "providers.env"
    path.write_text(PROVIDERS_ENV)
    path.chmod(0o600)
    return path


StartProxy = Callable[..., Awaitable[Proxy]]


@pytest.fixture
async def start_proxy(
    fake: Fake, audit_dir: Path, providers_env: Path
) -> AsyncIterator[StartProxy]:
    """Start a proxy whose providers all point at the fake; extra flags as args."""
    runners: list[web.AppRunner] = []

    async def start(
        *extra: str,
        token: bool = True,
        upstream: str | None = None,
        clock: Callable[[], float] | None = None,
        **overrides: Any,
    ) -> Proxy:
        base = upstream or fake.url
        argv = [
            "--listen",
            "127.0.0.1:0",
            "--bot",
            "bot1",
            "--audit-dir",
            str(audit_dir),
            "--providers-env",
            str(providers_env),
        ]
        for name in ("anthropic", "openai", "gemini", "openrouter"):
            argv += ["--upstream", f"{name}={base}"]
        if token:
            argv += ["--token", TOKEN]
        config = dataclasses.replace(load_config([*argv, *extra], {}), **overrides)
        app = make_app(config) if clock is None else make_app(config, clock)
        runner, url = await start_site(app)
        runners.append(runner)
        return Proxy(url, config, app, runner)

    yield start
    for runner in runners:
        await runner.cleanup()  # a second cleanup of a stopped one does nothing


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session
