"""The kill switch's own promises, against the in-memory runtime the TUI
tests use (tests/tui/memory_runtime.py) and real lock, gate and event files."""

from __future__ import annotations

import pytest

from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from tests.fakes.memory_runtime import MemoryRuntime, MemoryRuntimes

BOTS = ("alpha", "beta", "gamma")


@pytest.fixture
def fleet(home: FleetHome) -> FleetHome:
    for bot in BOTS:
        init_bot(home, bot)
    return home


@pytest.fixture
def runtime(fleet: FleetHome) -> MemoryRuntime:
    return MemoryRuntime(fleet)


@pytest.fixture
def runtimes(fleet: FleetHome, runtime: MemoryRuntime) -> MemoryRuntimes:
    return MemoryRuntimes(fleet, runtime)
