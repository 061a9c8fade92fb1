"""Fixtures for the TUI tests: a fleet home with two bots and traffic, the
in-memory runtime (see memory_runtime.py), and an app factory with a frozen
clock so that uptimes and "today" never move."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from tests.fakes.memory_runtime import MemoryRuntime, MemoryRuntimes
from tests.tui.tui_helpers import BOTS, append_records, frozen_clock, make_record


@pytest.fixture
def fleet(home: FleetHome) -> FleetHome:
    for bot in BOTS:
        init_bot(home, bot)
    append_records(home.traffic_log("alpha"), [make_record(n) for n in range(40)])
    return home


@pytest.fixture
def runtime(fleet: FleetHome) -> MemoryRuntime:
    return MemoryRuntime(fleet, running=["alpha"])


@pytest.fixture
def make(fleet: FleetHome, runtime: MemoryRuntime) -> Callable[..., object]:
    from cftui.tui.app import make_app

    def build(**options: object):
        options.setdefault("clock", frozen_clock)
        options.setdefault("status_interval", 3600)
        return make_app(fleet, MemoryRuntimes(fleet, runtime), **options)

    return build
