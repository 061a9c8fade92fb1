"""The overview's CPU and memory per service: `docker stats` figures read
(cgroup v1 and v2, the first sample with no earlier one), and the overview
sampling the runtime in a worker (the in-memory runtime's figures) and
only for a bot that runs."""

from __future__ import annotations

import io

from rich.console import Console
from textual.widgets import Static

from cftui.runtime.base import ServiceUsage
from cftui.tui.overview_tab import OverviewTab
from tests.tui.tui_helpers import on_bot_screen, wait_until

SIZE = (160, 50)
MiB = 1024 * 1024


def _stats(pre_total: int, pre_system: int, **memory: object) -> dict:
    return {
        "cpu_stats": {
            "cpu_usage": {"total_usage": 3_000_000_000},
            "system_cpu_usage": 120_000_000_000,
            "online_cpus": 2,
        },
        "precpu_stats": {
            "cpu_usage": {"total_usage": pre_total},
            "system_cpu_usage": pre_system,
        }
        if pre_system
        else {},
        "memory_stats": memory,
    }


def test_docker_stats_read_like_docker_stats_does() -> None:
    # 0.5 s of CPU over 10 s of the whole machine's 2 cores: 10% of one core.
    v2 = _stats(
        2_500_000_000,
        110_000_000_000,
        usage=300 * MiB,
        limit=2048 * MiB,
        stats={"inactive_file": 100 * MiB},
    )
    u = ServiceUsage.from_docker_stats(v2)
    assert u.cpu_percent is not None and abs(u.cpu_percent - 10.0) < 1e-9
    assert u.mem_bytes == 200 * MiB and u.mem_limit == 2048 * MiB
    v1 = _stats(
        2_500_000_000, 110_000_000_000, usage=300 * MiB, stats={"total_inactive_file": 50 * MiB}
    )
    assert ServiceUsage.from_docker_stats(v1).mem_bytes == 250 * MiB
    first = ServiceUsage.from_docker_stats(_stats(0, 0, usage=10 * MiB))
    assert first.cpu_percent is None and first.mem_limit is None
    assert ServiceUsage.from_docker_stats({}).mem_bytes == 0  # an odd answer: no crash


def _services(app) -> str:
    """The services table as text (a Rich console renders the Static's table)."""
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(app.screen.query_one("#overview-services", Static).content)
    return console.export_text()


async def test_overview_shows_cpu_and_memory_of_running_services(make, runtime) -> None:
    runtime.usage_figures["alpha"] = {
        "gateway": ServiceUsage(12.34, 85 * MiB, 2048 * MiB),
        "egress": ServiceUsage(None, 20 * MiB),
    }
    app = make(open_bot="alpha", open_tab="overview")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        await wait_until(pilot, lambda: bool(app.screen.query(OverviewTab)))
        await wait_until(pilot, lambda: "12.3%" in _services(app))
        text = _services(app)
        assert "CPU" in text and "Memory" in text
        assert "85.0 MiB / 2.0 GiB" in text and "20.0 MiB" in text
        assert ("usage", "alpha") in runtime.calls


async def test_overview_of_a_stopped_bot_asks_no_figures(make, runtime) -> None:
    runtime.usage_figures["beta"] = {"gateway": ServiceUsage(50.0, 10 * MiB)}
    app = make(open_bot="beta", open_tab="overview")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: bool(app.screen.query(OverviewTab)))
        await wait_until(pilot, lambda: "beta" in app.statuses)
        app.screen.query_one(OverviewTab).read_usage()
        await pilot.pause(0.2)
        assert ("usage", "beta") not in runtime.calls and "50.0%" not in _services(app)
