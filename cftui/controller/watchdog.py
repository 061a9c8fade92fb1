"""The watchdog: a gateway that exited or turned unhealthy while its bot
should be up is reported (a `crash` event, so `notify` sends it) and
restarted through `cftui.lifecycle.restart` with backoff, up to
`max_restarts` in a row; then its gateway is stopped and left down, and
that is reported too.

"Should be up" is read from the record, not guessed: the bot's last
lifecycle event in `audit/events.jsonl` is a start (start, restart,
rebuild), it is not locked by the kill switch, nothing (a restore, a
promote, a start) is under way on it, and its proxies run (so its stack is
up and only the gateway fell). An operator's `stop`, a `kill` or a paused
gateway (a snapshot holding it still) is therefore never "restarted".
A gateway that has run for `stable_s` again counts as healed. One given up
on stays down, across restarts of the controller, until the operator
starts it again.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from cftui import lifecycle, locks
from cftui.audit.events import record_event
from cftui.controller.clock import Clock
from cftui.controller.settings import Settings
from cftui.errors import CftuiError
from cftui.fleet import FleetHome
from cftui.runtime import Runtimes
from cftui.runtime.status import KILLED, RESTARTING, RUNNING, STOPPED, UNHEALTHY, BotStatus
from cftui.snapshots.reasons import one_line

POLL_S = 5.0
BACKOFF_S = 10.0  # doubled after each restart: 10, 20, 40 s ...
STABLE_S = 120.0
_UP_ACTIONS = {"start", "restart", "rebuild"}
_DOWN_ACTIONS = {"stop", "kill", "delete"}
_TAIL_BYTES = 1 << 20
_DOWN_STATES = {STOPPED, KILLED, RESTARTING, UNHEALTHY}


def last_lifecycle_actions(home: FleetHome) -> dict[str, str]:
    """The last start-or-stop kind of event per bot, from the log's tail."""
    try:
        fd = os.open(home.events_log, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return {}
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - _TAIL_BYTES)
        data = os.pread(fd, size - start, start)
    finally:
        os.close(fd)
    out: dict[str, str] = {}
    for line in data.split(b"\n")[1 if start else 0 :]:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict) or rec.get("ok") is False:
            continue
        action = rec.get("action")
        if action == "crash" and rec.get("gave_up") is True:
            action = "gave-up"  # left down on purpose: a new watchdog leaves it too
        if action in _UP_ACTIONS | _DOWN_ACTIONS | {"gave-up"}:
            names = [rec.get("bot")] if rec.get("bot") else rec.get("bots") or []
            for name in names:
                if isinstance(name, str):
                    out[name] = str(action)
    return out


@dataclass
class _Bot:
    attempts: int = 0
    next_try: float = 0.0  # clock seconds
    up_since: float | None = None
    gave_up: bool = False
    reported: bool = False
    backoff: float = 0.0


@dataclass
class Watchdog:
    home: FleetHome
    settings: Settings
    runtimes: Runtimes
    clock: Clock
    poll_s: float = POLL_S
    backoff_s: float = BACKOFF_S
    stable_s: float = STABLE_S
    on_action: Callable[[str, str], None] = lambda bot, what: None
    _bots: dict[str, _Bot] = field(default_factory=dict)
    _busy: set[str] = field(default_factory=set)
    _tasks: set[asyncio.Task] = field(default_factory=set)

    def _t(self) -> float:
        return self.clock.now().timestamp()

    def _crashed(self, st: BotStatus) -> str | None:
        """What is wrong with the gateway of a bot whose stack is up, or None."""
        gw = st.services.get("gateway")
        proxy = st.services.get("llm-proxy")
        if gw is None or proxy is None or proxy.state != RUNNING:
            return None
        if gw.state not in _DOWN_STATES or "paused" in gw.detail:
            return None
        return f"gateway {gw.state}" + (f" ({gw.detail})" if gw.detail else "")

    async def check(self) -> None:
        """One look at the fleet; restarts run in their own tasks."""
        bots = [b for b in self.home.bots().values() if self.settings.bot(b.name).watchdog]
        if not bots:
            return
        statuses, _errors = await lifecycle.fleet_status(self.home, bots, self.runtimes)
        last = await asyncio.to_thread(last_lifecycle_actions, self.home)
        now = self._t()
        for bot in bots:
            st = statuses.get(bot.name)
            w = self._bots.setdefault(bot.name, _Bot())
            if st is None or st.error or bot.name in self._busy:
                continue
            gw = st.services.get("gateway")
            if gw is not None and gw.state == RUNNING:
                w.up_since = w.up_since or now
                if w.attempts and now - w.up_since >= self.stable_s:
                    self._bots[bot.name] = _Bot()  # healed
                continue
            w.up_since = None
            what = self._crashed(st)
            if (
                what is None
                or w.gave_up
                or last.get(bot.name) not in _UP_ACTIONS
                or locks.is_locked(self.home, bot.name)
                or locks.other_operations(self.home, [bot.name])
            ):
                continue
            if not w.reported:
                w.reported = True
                self._record(bot.name, what, w)
            if now < w.next_try:
                continue
            if w.attempts >= self.settings.bot(bot.name).max_restarts:
                await self._give_up(bot.name, what, w)
                continue
            self._busy.add(bot.name)
            task = asyncio.create_task(self._restart(bot.name, w), name=f"cf-watchdog-{bot.name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _record(self, bot: str, what: str, w: _Bot) -> None:
        record_event(self.home, "crash", bot, state=what, attempt=w.attempts)
        self.on_action(bot, f"crashed: {what}")

    async def _restart(self, name: str, w: _Bot) -> None:
        try:
            w.attempts += 1
            w.backoff = self.backoff_s * 2 ** (w.attempts - 1)
            self.on_action(name, f"restarting the gateway (attempt {w.attempts})")
            try:
                await lifecycle.restart(self.home, self.home.bot(name), self.runtimes)
            except CftuiError as exc:
                self.on_action(name, f"restart failed: {one_line(exc)}")
            # the backoff counts from the end of this restart, not its start
            w.next_try = self._t() + w.backoff
            w.reported = False  # a crash after this restart is a new report
        finally:
            self._busy.discard(name)

    async def _give_up(self, name: str, what: str, w: _Bot) -> None:
        w.gave_up = True
        try:
            await self.runtimes.for_bot(self.home.bot(name)).stop_gateway(self.home.bot(name))
        except CftuiError as exc:
            self.on_action(name, f"could not stop the gateway: {one_line(exc)}")
        record_event(self.home, "crash", name, state=what, attempt=w.attempts, gave_up=True)
        self.on_action(name, f"gave up after {w.attempts} restart(s): gateway left down")

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except CftuiError as exc:
                self.on_action("watchdog", one_line(exc))
            except Exception as exc:  # a long-running loop reports and goes on
                self.on_action("watchdog", f"{type(exc).__name__}: {one_line(exc)}")
            await self.clock.sleep(self.poll_s)
