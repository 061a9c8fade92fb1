"""Scheduled snapshots: each bot with `snapshot_every` gets one snapshot
labelled `scheduled` per interval, then its scheduled snapshots are pruned
to the kept set (`retention`).

When each bot last had one is kept in `controller/schedule.json`, so a run
missed while the machine slept (or the controller was down) runs once at
start, not once per missed interval. A bot that is locked by the kill
switch or being restored is skipped and tried again at the next check.
The snapshot and the deletes are the domain's own (`cftui.snapshots`),
recorded in `audit/events.jsonl` as any operator's are; a failure is
recorded too (`snapshot`, `ok: false`), which is what `notify` sends.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cftui import locks, snapshots
from cftui.audit.events import record_event
from cftui.controller.clock import Clock
from cftui.controller.lock import controller_dir
from cftui.controller.retention import SCHEDULED_LABEL, to_prune
from cftui.controller.settings import Settings
from cftui.errors import CftuiError
from cftui.fleet import FleetHome
from cftui.runtime import Runtimes
from cftui.securefs import atomic_write_private, make_private_dirs
from cftui.snapshots.reasons import one_line

log = logging.getLogger("cftui.serve")
# The longest the scheduler sleeps between looks (in the clock's seconds):
# a skipped bot (locked, mid-restore) is tried again after this.
RECHECK_S = 60.0


@dataclass(frozen=True)
class Outcome:
    bot: str
    what: str  # "created", "skipped", "failed"
    name: str | None = None
    pruned: tuple[str, ...] = ()
    reason: str = ""


def mid_restore(home: FleetHome, bot: str) -> bool:
    """Whether a restore of the bot runs in another process now."""
    return any(op.action == "restore" for op in locks.other_operations(home, [bot]))


class SnapshotScheduler:
    def __init__(
        self,
        home: FleetHome,
        settings: Settings,
        runtimes: Runtimes,
        clock: Clock,
        on_outcome: Callable[[Outcome], None] = lambda o: None,
    ) -> None:
        self.home = home
        self.settings = settings
        self.runtimes = runtimes
        self.clock = clock
        self.on_outcome = on_outcome
        self._state_path = controller_dir(home) / "schedule.json"
        self._last = self._load()

    def _load(self) -> dict[str, datetime]:
        try:
            with open(self._state_path, "rb") as f:
                raw = json.loads(f.read(1 << 20))
            return {str(k): datetime.fromisoformat(v) for k, v in dict(raw).items()}
        except (OSError, ValueError, TypeError, AttributeError):
            return {}

    def _save(self) -> None:
        make_private_dirs(self._state_path.parent)
        body = json.dumps({k: v.isoformat() for k, v in self._last.items()}, indent=1)
        atomic_write_private(self._state_path, body + "\n")

    def _due(self, now: datetime) -> list[str]:
        due = []
        for name, bs in self.settings.bots.items():
            if bs.snapshot_every_s is None:
                continue
            last = self._last.get(name)
            if last is None or now - last >= timedelta(seconds=bs.snapshot_every_s):
                due.append(name)
        return due

    def seconds_to_next(self, now: datetime) -> float:
        waits = [RECHECK_S]
        for name, bs in self.settings.bots.items():
            if bs.snapshot_every_s is None:
                continue
            last = self._last.get(name)
            left = 0.0 if last is None else bs.snapshot_every_s - (now - last).total_seconds()
            waits.append(max(0.0, left))
        return min(waits)

    async def tick(self) -> list[Outcome]:
        """Take every snapshot that is due now (bots in parallel)."""
        now = self.clock.now()
        outcomes = await asyncio.gather(*(self._one(b, now) for b in self._due(now)))
        for o in outcomes:
            self.on_outcome(o)
        return list(outcomes)

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # a long-running loop reports and goes on
                log.warning("schedule: %s: %s", type(exc).__name__, one_line(exc))
            await self.clock.sleep(self.seconds_to_next(self.clock.now()))

    async def _one(self, name: str, now: datetime) -> Outcome:
        if locks.is_locked(self.home, name):
            return Outcome(name, "skipped", reason="locked by the kill switch")
        if await asyncio.to_thread(mid_restore, self.home, name):
            return Outcome(name, "skipped", reason="a restore is running")
        try:
            bot = self.home.bot(name)
            if bot.runtime == "docker":  # state/ is on the host, as `snapshot create` does it
                info = await asyncio.to_thread(
                    snapshots.create_snapshot, self.home, name, SCHEDULED_LABEL, now=now
                )
            else:
                info = await snapshots.snapshot(
                    self.home, bot, SCHEDULED_LABEL, runtime=self.runtimes.for_bot(bot)
                )
        except (CftuiError, OSError) as exc:
            reason = one_line(exc)
            record_event(self.home, "snapshot", name, op="scheduled", ok=False, error=reason)
            self._last[name] = now  # tried: the next try is one interval on
            self._save()
            return Outcome(name, "failed", reason=reason)
        self._last[name] = now
        self._save()
        pruned = await asyncio.to_thread(self._prune, name)
        return Outcome(name, "created", info.name, tuple(pruned))

    def _prune(self, name: str) -> list[str]:
        keep = self.settings.bot(name).keep
        gone = []
        for old in to_prune(snapshots.list_snapshots(self.home, name), keep):
            try:
                snapshots.delete(self.home, name, old)
                gone.append(old)
            except CftuiError as exc:
                log.warning("%s: could not prune %s: %s", name, old, exc)
        return gone
