"""The kill switch: the one implementation behind `cftui kill`, the TUI's
kill key and `cftui --run`'s signal path (CONTRACTS §6).

Order matters. The lock is written first, so that from that instant nothing
of ours (`start`, a TUI action, a restart) can bring a bot back; then every
bot is killed at once, each by its own runtime, which cuts the gateway's
network before killing it. The result says exactly what happened per bot.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cftui.audit.events import record_event, utc_now_iso
from cftui.errors import BotLocked, RuntimeUnavailable
from cftui.fleet import BotConfig, FleetHome, validate_bot_name
from cftui.runtime import Runtimes
from cftui.runtime.base import KillReport
from cftui.securefs import atomic_write_private, make_private_dirs

# A runtime that does not answer within this time is reported, not waited on.
KILL_TIMEOUT_S = 10.0


def _lock_path(home: FleetHome, bot: str) -> os.PathLike:
    return home.locks_dir / f"{validate_bot_name(bot)}.lock"


def lock_bots(home: FleetHome, bots: Sequence[str], reason: str = "kill") -> None:
    """Mark bots locked; survives restarts of cftui and of the machine."""
    make_private_dirs(home.locks_dir)
    body = json.dumps({"ts": utc_now_iso(), "reason": reason}) + "\n"
    for bot in bots:
        atomic_write_private(_lock_path(home, bot), body)  # type: ignore[arg-type]


def is_locked(home: FleetHome, bot: str) -> bool:
    return os.path.exists(_lock_path(home, bot))


def locked_bots(home: FleetHome) -> list[str]:
    try:
        names = os.listdir(home.locks_dir)
    except FileNotFoundError:
        return []
    return sorted(n.removesuffix(".lock") for n in names if n.endswith(".lock"))


def ensure_unlocked(home: FleetHome, bot: str) -> None:
    """Raise BotLocked if the kill switch holds this bot."""
    if is_locked(home, bot):
        raise BotLocked(f"{bot} is locked by the kill switch: run `cftui unlock {bot}` first")


def unlock(home: FleetHome, bots: Sequence[str]) -> list[str]:
    """Lift the lock; returns the bots that were locked. Records an event."""
    lifted = []
    for bot in bots:
        try:
            os.unlink(_lock_path(home, bot))
            lifted.append(bot)
        except FileNotFoundError:
            pass
    if lifted:
        record_event(home, "unlock", bots=lifted)
    return lifted


@dataclass
class KillResult:
    """What the kill switch did to the whole set of bots."""

    reports: list[KillReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.reports)


async def _kill_one(runtimes: Runtimes, bot: BotConfig) -> KillReport:
    started = time.monotonic()
    try:
        runtime = runtimes.get(bot.runtime)
        report = await asyncio.wait_for(runtime.kill(bot), KILL_TIMEOUT_S)
    except TimeoutError:
        report = KillReport(
            bot.name, errors=[f"{bot.runtime} did not answer in {KILL_TIMEOUT_S:.0f} s"]
        )
    except RuntimeUnavailable as exc:
        report = KillReport(bot.name, errors=[str(exc)])
    except Exception as exc:  # a kill must report every bot, whatever one does
        report = KillReport(bot.name, errors=[f"{type(exc).__name__}: {exc}"])
    report.seconds = time.monotonic() - started
    return report


async def kill(
    home: FleetHome,
    bots: Sequence[BotConfig],
    runtimes: Runtimes | None = None,
    *,
    lock: bool = True,
    action: str = "kill",
) -> KillResult:
    """Lock, then kill every bot in parallel; record one event.

    `lock=False` is for `cftui --run`'s signal path: the same fast stop, but the
    operator stopping their own foreground run does not leave the bot locked.
    """
    started = time.monotonic()
    if lock:
        lock_bots(home, [b.name for b in bots])
    own = runtimes is None
    runtimes = runtimes or Runtimes(home)
    try:
        reports = await asyncio.gather(*(_kill_one(runtimes, b) for b in bots))
    finally:
        if own:
            await runtimes.aclose()
    result = KillResult(list(reports), time.monotonic() - started)
    record_event(
        home,
        action,
        bots=[b.name for b in bots],
        ok=result.ok,
        seconds=round(result.seconds, 3),
        reports=[r.summary() for r in result.reports],
    )
    return result
