"""The demo's agents use their egress proxy (issue #22: the demo showed an
empty Capture tab): on a real engine, a demo bot's unlisted fetch lands in
its egress ledger and its listed one, to the fake provider, is let through."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cftui import botdisk
from cftui.demo import DEMO_BOTS, DEMO_UNLISTED_URL, FAKE_LLM, start_demo
from cftui.fleet import FleetHome
from cftui.runtime import Runtimes
from cftui.runtime.docker.spec import container_name
from tests.tui.test_demo_e2e_tmux import _remove_demo

pytestmark = pytest.mark.docker


@pytest.fixture
def demo_engine(docker_client: Any, tmp_path: Path) -> Iterator[Any]:
    _remove_demo(docker_client)
    try:
        yield docker_client
    finally:
        _remove_demo(docker_client)
        for bot in DEMO_BOTS:
            with contextlib.suppress(Exception):
                botdisk.delete(FleetHome(tmp_path / "demo"), bot)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def test_a_demo_bot_fetches_a_listed_and_an_unlisted_url_through_its_egress(
    demo_engine: Any, tmp_path: Path
) -> None:
    home = FleetHome(tmp_path / "demo")
    bots = asyncio.run(start_demo(home, Runtimes(home)))
    bot = bots[0].name
    assert f"{FAKE_LLM}:8080" in home.bot(bot).egress_allow
    egress = demo_engine.containers.get(container_name(bot, "egress"))
    assert "cf-demo" in egress.attrs["NetworkSettings"]["Networks"]
    unlisted = DEMO_UNLISTED_URL.split("/")[2]
    ledger = home.audit_dir(bot) / "egress.requests.json"
    stats = home.audit_dir(bot) / "egress.stats.json"
    deadline = time.monotonic() + 60
    while True:
        hosts = [r.get("host") for r in _read_json(ledger).get("requests", [])]
        allowed = _read_json(stats).get("allowed", 0)
        if unlisted in hosts and allowed >= 1:
            break
        assert time.monotonic() < deadline, (hosts, _read_json(stats))
        time.sleep(0.5)
    assert FAKE_LLM not in hosts  # the listed fetch was not refused
    assert _read_json(stats).get("refused_total", 0) >= 1
