"""Scheduled snapshots: one is taken when due (a real, encrypted snapshot),
pruning keeps exactly the newest of each of the last N hours, days and
weeks, manual and safety snapshots are never pruned, a missed run runs once,
and a locked bot or one being restored is left alone."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cftui import locks, snapshots
from cftui.audit.events import read_events
from cftui.controller import settings as controller_settings
from cftui.controller.clock import Clock, ScaledClock
from cftui.controller.lock import controller_dir
from cftui.controller.retention import SCHEDULED_LABEL, to_prune
from cftui.controller.schedule import SnapshotScheduler
from cftui.controller.settings import Keep
from cftui.errors import FleetError
from cftui.fleet import FleetHome
from cftui.snapshots.catalog import SnapshotInfo, snapshot_name
from tests.fakes.memory_runtime import MemoryRuntime, MemoryRuntimes

NOW = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)  # a Wednesday


class ManualClock(Clock):
    def __init__(self, now: datetime) -> None:
        self.t = now

    def now(self) -> datetime:
        return self.t

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


def _configure(home: FleetHome, **table: object) -> None:
    with home.editing() as doc:
        doc["bots"]["alpha"]["controller"] = table


def _scheduler(home: FleetHome, runtime: MemoryRuntime, clock: Clock) -> SnapshotScheduler:
    return SnapshotScheduler(
        home, controller_settings.load(home), MemoryRuntimes(home, runtime), clock
    )


def _info(label: str, when: datetime) -> SnapshotInfo:
    return SnapshotInfo(snapshot_name(label, when), label, when, 1)


def _plant(home: FleetHome, label: str, when: datetime, template: Path) -> str:
    name = snapshot_name(label, when)
    shutil.copyfile(template, home.snapshots_dir("alpha") / name)
    return name


def test_retention_keeps_the_newest_of_each_hour_day_and_week() -> None:
    # one scheduled snapshot every hour for 40 days before NOW, and a manual one
    hourly = [_info(SCHEDULED_LABEL, NOW - timedelta(hours=h)) for h in range(40 * 24)]
    manual = _info("before-upgrade", NOW - timedelta(days=39))
    safety = _info("pre-restore", NOW - timedelta(days=38))
    pruned = set(to_prune([*hourly, manual, safety], Keep(24, 7, 4)))
    kept = {s.name for s in hourly} - pruned
    expect = {snapshot_name(SCHEDULED_LABEL, NOW - timedelta(hours=h)) for h in range(24)}
    # the newest of each of the 7 most recent days: today's 10:30, then 23:30 of the six before
    last_of_day = [NOW.replace(hour=23) - timedelta(days=d) for d in range(1, 7)]
    expect |= {snapshot_name(SCHEDULED_LABEL, t) for t in last_of_day}
    # the newest of each of the 4 most recent ISO weeks: this week's NOW, then the Sundays
    sunday = (NOW - timedelta(days=NOW.weekday() + 1)).replace(hour=23)
    expect |= {snapshot_name(SCHEDULED_LABEL, sunday - timedelta(weeks=w)) for w in range(3)}
    # Dec 1 23:30 is also one of the last 24 hours; Sunday Nov 29 also one of the 7 days
    assert kept == expect and len(kept) == 24 + 6 + 3 - 2
    assert manual.name not in pruned and safety.name not in pruned


def test_retention_with_nothing_kept_prunes_every_scheduled_one_only() -> None:
    snaps = [_info(SCHEDULED_LABEL, NOW), _info("manual", NOW)]
    assert to_prune(snaps, Keep(0, 0, 0)) == [snaps[0].name]


async def test_a_due_snapshot_is_taken_and_pruning_keeps_exactly_the_set(
    fleet: FleetHome, runtime: MemoryRuntime
) -> None:
    _configure(fleet, snapshot_every="1h", keep_hourly=3, keep_daily=2, keep_weekly=2)
    template = snapshots.create_snapshot(fleet, "alpha", "manual").name
    folder = fleet.snapshots_dir("alpha")
    planted = [
        _plant(fleet, SCHEDULED_LABEL, NOW - timedelta(hours=h), folder / template)
        for h in range(1, 24 * 10)
    ]
    safety = _plant(fleet, "pre-promote", NOW - timedelta(days=20), folder / template)
    [outcome] = await _scheduler(fleet, runtime, ManualClock(NOW)).tick()
    assert outcome.what == "created" and outcome.name == snapshot_name(SCHEDULED_LABEL, NOW)
    left = {s.name for s in snapshots.list_snapshots(fleet, "alpha")}
    expect = {
        outcome.name,  # hourly 1, day 1, week 1
        snapshot_name(SCHEDULED_LABEL, NOW - timedelta(hours=1)),  # hourly 2
        snapshot_name(SCHEDULED_LABEL, NOW - timedelta(hours=2)),  # hourly 3
        snapshot_name(SCHEDULED_LABEL, NOW.replace(hour=23) - timedelta(days=1)),  # day 2
        snapshot_name(  # week 2: the Sunday before this Wednesday, its last hour
            SCHEDULED_LABEL, (NOW - timedelta(days=3)).replace(hour=23)
        ),
    }
    assert left == expect | {template, safety}
    assert set(outcome.pruned) == set(planted) - expect
    # the new snapshot is a real one, readable with the bot's key
    snapshots.check_key(fleet, "alpha", folder / outcome.name)
    assert os.readlink(folder / snapshots.LATEST) == outcome.name
    ops = [e.get("op") for e in read_events(fleet, "alpha") if e["action"] == "snapshot"]
    assert ops.count("create") == 2 and ops.count("delete") == len(outcome.pruned)


async def test_a_missed_run_runs_once_at_start_then_waits_an_interval(
    fleet: FleetHome, runtime: MemoryRuntime
) -> None:
    _configure(fleet, snapshot_every="1h")
    controller_dir(fleet).mkdir(mode=0o700, parents=True)
    (controller_dir(fleet) / "schedule.json").write_text(
        json.dumps({"alpha": (NOW - timedelta(hours=7)).isoformat()})
    )
    clock = ManualClock(NOW)
    sched = _scheduler(fleet, runtime, clock)
    assert [o.what for o in await sched.tick()] == ["created"]
    assert await sched.tick() == []
    clock.t = NOW + timedelta(minutes=59)
    assert await sched.tick() == [] and sched.seconds_to_next(clock.t) == 60
    clock.t = NOW + timedelta(hours=1)
    assert [o.what for o in await sched.tick()] == ["created"]
    assert len(snapshots.list_snapshots(fleet, "alpha")) == 2


async def test_the_loop_on_a_scaled_clock_takes_one_an_hour(
    fleet: FleetHome, runtime: MemoryRuntime
) -> None:
    _configure(fleet, snapshot_every="1h", keep_hourly=100)
    clock = ScaledClock(3600.0 / 1.5, start=NOW)  # an hour every 1.5 s
    sched = _scheduler(fleet, runtime, clock)
    task = asyncio.create_task(sched.run())
    try:
        while len(snapshots.list_snapshots(fleet, "alpha")) < 3:
            assert clock.now() < NOW + timedelta(hours=12), "the schedule did not run"
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    snaps = sorted(snapshots.list_snapshots(fleet, "alpha"), key=lambda s: s.created)
    assert [s.label for s in snaps] == [SCHEDULED_LABEL] * 3
    assert snaps[0].created - NOW < timedelta(minutes=30)  # the first one at start
    gaps = [b.created - a.created for a, b in itertools.pairwise(snaps)]
    assert all(g >= timedelta(hours=1) for g in gaps)  # then one an hour, on the clock


async def test_a_locked_bot_is_skipped_and_taken_once_unlocked(
    fleet: FleetHome, runtime: MemoryRuntime
) -> None:
    _configure(fleet, snapshot_every="1h")
    locks.lock_bots(fleet, ["alpha"])
    sched = _scheduler(fleet, runtime, ManualClock(NOW))
    [o] = await sched.tick()
    assert o.what == "skipped" and "locked" in o.reason
    assert snapshots.list_snapshots(fleet, "alpha") == []
    locks.remove_locks(fleet, ["alpha"])
    assert [o.what for o in await sched.tick()] == ["created"]


async def test_a_bot_being_restored_by_another_process_is_skipped(
    fleet: FleetHome, runtime: MemoryRuntime
) -> None:
    _configure(fleet, snapshot_every="1h")
    root = Path(__file__).resolve().parents[2]
    code = (
        "import asyncio,sys; from cftui import locks; from cftui.fleet import FleetHome\n"
        "async def main():\n"
        f"    async with locks.operation(FleetHome({str(fleet.root)!r}), 'alpha', 'restore'):\n"
        "        print('in', flush=True); await asyncio.sleep(60)\n"
        "asyncio.run(main())"
    )
    env = {**os.environ, "PYTHONPATH": f"{root}:{root / 'proxies'}"}
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"in"
        [o] = await _scheduler(fleet, runtime, ManualClock(NOW)).tick()
        assert o.what == "skipped" and "restore" in o.reason
    finally:
        child.kill()
        child.wait()
    assert snapshots.list_snapshots(fleet, "alpha") == []


async def test_a_failed_snapshot_is_recorded_for_notify(
    fleet: FleetHome, runtime: MemoryRuntime
) -> None:
    _configure(fleet, snapshot_every="1h")
    shutil.rmtree(fleet.state_dir("alpha"))
    [o] = await _scheduler(fleet, runtime, ManualClock(NOW)).tick()
    assert o.what == "failed" and "no state directory" in o.reason
    [event] = [e for e in read_events(fleet, "alpha") if e["action"] == "snapshot"]
    assert event["ok"] is False and event["op"] == "scheduled"


@pytest.mark.parametrize(
    "table, message",
    [
        ({"snapshot_every": "5s"}, "at least 60 s"),
        ({"snapshot_every": "hourly"}, "use a number"),
        ({"snapshot_every": 3600}, "must be a string"),
        ({"keep_daily": -1}, "keep_daily must be a whole number"),
        ({"promote_remote": "../x"}, "not a git remote name"),
        ({"promote_branch": "a..b"}, "not a branch name"),
        ({"watchdog": "yes"}, "true or false"),
    ],
)
def test_bad_settings_are_one_line_naming_the_table(
    fleet: FleetHome, table: dict, message: str
) -> None:
    _configure(fleet, **table)
    with pytest.raises(FleetError, match=message) as exc:
        controller_settings.load(fleet)
    assert str(exc.value).startswith("fleet.toml: [bots.alpha.controller]: ")
    assert fleet.bot("alpha").name == "alpha"  # the bot's own table still reads


def test_settings_read_intervals_and_defaults(fleet: FleetHome) -> None:
    _configure(fleet, snapshot_every="@daily")
    s = controller_settings.load(fleet)
    assert s.bot("alpha").snapshot_every_s == 86400 and s.bot("alpha").keep == Keep(24, 7, 4)
    assert s.bot("beta").snapshot_every_s is None
