"""The kill switch: the one implementation behind `cftui kill`, the TUI's
kill key and `cftui --run`'s signal path (CONTRACTS §6).

Order matters. The lock is written first, so that from that instant the
gate (`cftui.locks`) refuses every start of ours; operations in flight are
cancelled; then every bot is killed at once, each by its own runtime, which
cuts the gateway's network before killing it. A bot whose gate was held
when the lock landed (a start past its check, mid-call) is killed again
once that call has finished, so the report is true. The result says
exactly what happened per bot.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from cftui import locks
from cftui.audit.events import record_event
from cftui.errors import RuntimeUnavailable
from cftui.fleet import BotConfig, FleetHome
from cftui.hosts.config import LOCAL
from cftui.runtime import Runtimes
from cftui.runtime.base import KillReport

T = TypeVar("T")

# A runtime that does not answer within this time is reported, not waited on.
KILL_TIMEOUT_S = 10.0


def unlock(home: FleetHome, bots: Sequence[str]) -> list[str]:
    """Lift the lock on the operator's machine; returns the bots that were
    locked. Records an event. `lift` also clears the markers on other hosts."""
    lifted = locks.remove_locks(home, bots)
    if lifted:
        record_event(home, "unlock", bots=lifted)
    return lifted


@dataclass
class UnlockResult:
    """What `lift` did: the bots unlocked, and those whose host kept its
    kill marker (down, or refusing), which stay locked, with why."""

    lifted: list[str] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)


async def _clear_marker(runtimes: Runtimes, bot: BotConfig) -> str | None:
    """Remove the bot's kill marker on its host; the reason when it could not."""
    import asyncssh  # only when a bot is on another host

    runtimes.for_bot(bot)
    link = runtimes.links[bot.host]
    marker = link.host.kill_marker(bot.name)
    try:
        async with asyncio.timeout(KILL_TIMEOUT_S):
            conn = await link.connection(KILL_TIMEOUT_S)
            res = await conn.run(f"rm -f -- {shlex.quote(marker)}", check=False)
    except TimeoutError:
        return f"host {bot.host} did not answer in {KILL_TIMEOUT_S:.0f} s"
    except RuntimeUnavailable as exc:
        return str(exc)
    except (OSError, asyncssh.Error) as exc:
        return f"host {bot.host}: {type(exc).__name__}"
    if res.exit_status != 0:
        why = " ".join(str(res.stderr or "").split())[:200]
        return f"host {bot.host}: cannot remove {marker}: {why or res.exit_status}"
    return None


async def lift(home: FleetHome, names: Sequence[str], runtimes: Runtimes) -> UnlockResult:
    """Unlock bots everywhere: the kill marker on each remote bot's host is
    removed first (every host at once, each within the kill's bound); a bot
    whose marker could not be removed stays locked, so nothing there starts
    it while its host still says killed. Then the locks here (`unlock`)."""
    bots = home.bots()
    remote = [bots[n] for n in names if n in bots and bots[n].host != LOCAL]
    reasons = await asyncio.gather(*(_clear_marker(runtimes, b) for b in remote))
    result = UnlockResult()
    result.held = {b.name: why for b, why in zip(remote, reasons, strict=True) if why}
    result.lifted = unlock(home, [n for n in names if n not in result.held])
    return result


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
        runtime = runtimes.for_bot(bot)
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


@dataclass
class _InFlight:
    """What was under way on the bots when the lock landed."""

    busy_gates: set[str]
    mine: list[locks.Operation]
    others: list[locks.OtherOperation]

    def bots(self) -> set[str]:
        return self.busy_gates | {op.bot for op in self.mine} | {op.bot for op in self.others}

    def cancelled(self, bot: str) -> list[str]:
        return [op.action for op in self.mine if op.bot == bot] + [
            f"{op.action} (pid {op.pid})" for op in self.others if op.bot == bot
        ]


async def _in_flight(
    home: FleetHome, names: Sequence[str], before: Sequence[locks.OtherOperation]
) -> _InFlight:
    """Looked at right after the lock is written, before any runtime call:
    this process's operations are cancelled on the spot.

    `before` is what other processes had under way just before the lock: one
    that sees the lock and ends before this second look (its watcher polls
    every 50 ms) was still cancelled by this kill, and is reported so."""
    mine = locks.cancel_operations(names)

    def elsewhere() -> tuple[list[locks.OtherOperation], set[str]]:
        busy = {n for n in names if locks.gate_busy(home, n)}
        return locks.other_operations(home, names), busy

    others, busy = await asyncio.to_thread(elsewhere)
    seen = {op.path for op in others}
    others += [op for op in before if op.path not in seen]
    return _InFlight(busy, mine, others)


async def _settle(
    home: FleetHome, runtimes: Runtimes, bots: Sequence[BotConfig], flight: _InFlight
) -> dict[str, KillReport]:
    """Wait for the interrupted starts and operations to end, then kill the
    bots they touched once more: whatever they managed to bring up."""
    busy = flight.bots()
    touched = [b for b in bots if b.name in busy]
    if not touched:
        return {}
    gates = await asyncio.gather(
        *(asyncio.to_thread(locks.wait_gate, home, b.name) for b in touched)
    )
    left = await locks.wait_operations_ended(home, flight.mine, flight.others)
    sweeps = await asyncio.gather(*(_kill_one(runtimes, b) for b in touched))
    out = {}
    for bot, gate_free, sweep in zip(touched, gates, sweeps, strict=True):
        if not gate_free:
            sweep.errors.append(f"a start still held the gate after {locks.GATE_WAIT_S:.0f} s")
        sweep.errors += [text for owner, text in left if owner == bot.name]
        sweep.cancelled = flight.cancelled(bot.name)
        out[bot.name] = sweep
    return out


async def kill(
    home: FleetHome,
    bots: Sequence[BotConfig],
    runtimes: Runtimes | None = None,
    *,
    lock: bool = True,
    action: str = "kill",
) -> KillResult:
    """Lock, cancel what is in flight, then kill every bot in parallel;
    record one event.

    `lock=False` is for `cftui --run`'s signal path: the same fast stop, but the
    operator stopping their own foreground run does not leave the bot locked
    (its own start, if any, it has cancelled itself)."""
    started = time.monotonic()
    names = [b.name for b in bots]
    flight = _InFlight(set(), [], [])
    if lock:
        before = locks.other_operations(home, names)  # one small directory read
        locks.lock_bots(home, names)
        flight = await _in_flight(home, names, before)
    own = runtimes is None
    runtimes = runtimes or Runtimes(home)
    try:
        reports = await asyncio.gather(*(_kill_one(runtimes, b) for b in bots))
        sweeps = await _settle(home, runtimes, bots, flight)
    finally:
        if own:
            await runtimes.aclose()
    for report in reports:
        if report.bot in sweeps:
            report.merge(sweeps[report.bot])
            report.seconds = time.monotonic() - started  # until the second kill
    result = KillResult(list(reports), time.monotonic() - started)
    record_event(
        home,
        action,
        bots=names,
        ok=result.ok,
        seconds=round(result.seconds, 3),
        reports=[r.summary() for r in result.reports],
    )
    return result
