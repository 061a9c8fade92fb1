"""The controller's loop: one object that owns the fleet home's controller
lock, its secrets, one `Runtimes`, and the tasks that follow the events
log (notify), take scheduled snapshots, watch the gateways and serve HTTP.

Every action is one log line (`log`) and, being a domain call, one event
in `audit/events.jsonl`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from cftui.audit.events import record_event
from cftui.controller import budget, notify, proposals_watch, remote_kill, server
from cftui.controller.clock import Clock
from cftui.controller.lock import ServeLock
from cftui.controller.notify import BACKOFF_S as NOTIFY_BACKOFF_S
from cftui.controller.notify import POLL_S as NOTIFY_POLL_S
from cftui.controller.schedule import Outcome, SnapshotScheduler
from cftui.controller.secrets import ControllerSecrets, load_or_create
from cftui.controller.settings import DEFAULT_LISTEN, Settings, parse_listen
from cftui.controller.watchdog import Watchdog
from cftui.controller.webhooks_in import SeenDeliveries
from cftui.errors import CftuiError, ProposalError
from cftui.fleet import BotConfig, FleetHome
from cftui.inert import inert
from cftui.mirrors import AuditMirrors
from cftui.proposal_tree import approved
from cftui.runtime import Runtimes
from cftui.snapshots.reasons import one_line

logger = logging.getLogger("cftui.serve")

# How often the controller looks for bots whose audit it does not mirror yet.
FOLLOW_RESCAN_S = 10.0


@dataclass(frozen=True)
class ServeOptions:
    """What `cftui serve` was asked for, flags over fleet.toml."""

    listen: str = DEFAULT_LISTEN
    kill_listen: str | None = None
    notify: tuple[str, ...] = ()
    watchdog_poll_s: float = 5.0
    proposals_poll_s: float = proposals_watch.POLL_S
    watchdog_backoff_s: float = 10.0
    watchdog_stable_s: float = 120.0
    notify_backoff_s: float = NOTIFY_BACKOFF_S
    notify_poll_s: float = NOTIFY_POLL_S


@dataclass
class Controller:
    home: FleetHome
    settings: Settings
    options: ServeOptions
    runtimes: Runtimes
    clock: Clock = field(default_factory=Clock)
    say: Callable[[str], None] = logger.info
    secrets: ControllerSecrets = field(init=False)
    deliveries: SeenDeliveries = field(init=False)
    notifier: notify.Notifier = field(init=False)
    proposals: proposals_watch.ProposalsWatch = field(init=False)
    mirrors: AuditMirrors = field(init=False)
    _tasks: set[asyncio.Task] = field(default_factory=set)
    _promoting: dict[str, asyncio.Lock] = field(default_factory=dict)
    _actions: set[asyncio.Task] = field(default_factory=set)
    _runners: list[web.AppRunner] = field(default_factory=list)
    bound: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.secrets = load_or_create(self.home)
        self.deliveries = SeenDeliveries(self.home)
        self.proposals = proposals_watch.ProposalsWatch(self.home)
        self.mirrors = AuditMirrors(self.runtimes)
        urls = tuple(dict.fromkeys(self.options.notify + self.settings.notify))
        self.notifier = notify.Notifier(
            urls,
            self.secrets.notify,
            backoff_s=self.options.notify_backoff_s,
            on_result=self._notified,
        )

    # --- what handlers and tasks call -----------------------------------
    def log(self, line: str) -> None:
        self.say(inert(line))

    def _notified(self, url: str, event: dict[str, Any], result: str) -> None:
        if result != "delivered":
            self.log(f"notify {url}: {event['event']} {result}")

    async def _follow_audits(self) -> None:
        """Every bot's audit mirror (a Lima VM's, another host's), which the
        budgets and the notifications read from the fleet home, where the
        bot is now (`AuditMirrors`): a bot made, moved or deleted while the
        controller runs is followed, or let go, within `FOLLOW_RESCAN_S`."""
        while True:
            with contextlib.suppress(CftuiError, OSError):
                bots = await asyncio.to_thread(lambda: list(self.home.bots().values()))
                await self.mirrors.sync(bots)
            await asyncio.sleep(FOLLOW_RESCAN_S)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def remote_kill(self, bots: list[BotConfig]) -> dict[str, Any]:
        names = ", ".join(b.name for b in bots) or "(no bots)"
        self.log(f"remote kill: {names}")
        report = await remote_kill.kill(self.home, bots, self.runtimes)
        for entry in report["bots"].values():
            self.log(f"remote kill: {entry['summary']}")
        return report

    async def promote_target(self, bot: str) -> tuple[str, str]:
        """(remote, branch) that the bot's webhooks promote from."""
        bs = self.settings.bot(bot)
        if bs.promote_branch:
            return bs.promote_remote, bs.promote_branch
        branch = await asyncio.to_thread(approved.branch, self.home.code_dir(bot))
        return bs.promote_remote, branch

    def promote_soon(self, bot: str, source: str, delivery: str) -> None:
        task = self._spawn(self._promote(bot, source, delivery), f"cf-promote-{bot}")
        self._actions.add(task)
        task.add_done_callback(self._actions.discard)

    async def _promote(self, name: str, source: str, delivery: str) -> None:
        from cftui.proposals import rollout

        lock = self._promoting.setdefault(name, asyncio.Lock())
        async with lock:  # one promotion of a bot at a time, in arrival order
            try:
                bot = self.home.bot(name)
                result = await rollout.promote_and_roll_out(
                    self.home, bot, self.runtimes, source=source
                )
            except ProposalError as exc:
                if "nothing to promote" in str(exc):
                    self.log(f"{name}: {exc}")
                    return
                self._promote_failed(name, source, delivery, exc)
                return
            except CftuiError as exc:
                self._promote_failed(name, source, delivery, exc)
                return
            done = "rebuilt" if result.rebuilt else "restarted" if result.restarted else "promoted"
            self.log(
                f"{name}: promoted {source} as {result.commit[:12]} "
                f"(was {result.before[:12]}, {len(result.paths)} file(s), {done})"
            )

    def _promote_failed(self, name: str, source: str, delivery: str, exc: Exception) -> None:
        reason = one_line(exc)
        record_event(self.home, "promote", name, ok=False, source=source, via="webhook",
                     delivery=delivery, error=reason)  # fmt: skip
        self.log(f"{name}: promote from {source} failed: {reason}")

    def _scheduled(self, o: Outcome) -> None:
        if o.what == "created":
            pruned = f", pruned {len(o.pruned)}" if o.pruned else ""
            self.log(f"{o.bot}: scheduled snapshot {o.name}{pruned}")
        else:
            self.log(f"{o.bot}: scheduled snapshot {o.what}: {o.reason}")

    async def idle(self) -> None:
        """Until every background action (promotions) has ended: for tests."""
        while self._actions:
            await asyncio.gather(*list(self._actions), return_exceptions=True)

    # --- running ---------------------------------------------------------
    async def start(self) -> None:
        """Start the listeners and the loops; returns once they run."""
        await self.notifier.start()
        follower = notify.EventFollower(self.home)
        self._spawn(notify.follow(follower, self.notifier, self.options.notify_poll_s), "cf-follow")
        scheduler = SnapshotScheduler(
            self.home, self.settings, self.runtimes, self.clock, self._scheduled
        )
        self._spawn(scheduler.run(), "cf-schedule")
        watchdog = Watchdog(
            self.home,
            self.settings,
            self.runtimes,
            self.clock,
            poll_s=self.options.watchdog_poll_s,
            backoff_s=self.options.watchdog_backoff_s,
            stable_s=self.options.watchdog_stable_s,
            on_action=lambda bot, what: self.log(f"{bot}: {what}"),
        )
        self._spawn(watchdog.run(), "cf-watchdog")
        self._spawn(self._follow_audits(), "cf-audit-mirrors")
        self._spawn(
            budget.watch_budgets(self.home, self.runtimes, self.clock, self.log), "cf-budget"
        )
        self._spawn(
            proposals_watch.watch_proposals(
                self.proposals,
                self.clock,
                self.log,
                self.options.proposals_poll_s,
            ),
            "cf-proposals",
        )
        sites = [(self.options.listen, self.options.kill_listen is None)]
        if self.options.kill_listen:
            sites.append((self.options.kill_listen, True))
        for i, (spec, with_kill) in enumerate(sites):
            host, port = parse_listen(spec)
            app = server.make_app(self, webhooks=i == 0, kill_route=with_kill)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, host, port)
            try:
                await site.start()
            except OSError as exc:
                await runner.cleanup()
                raise CftuiError(f"cannot listen on {spec}: {exc.strerror}") from None
            self._runners.append(runner)
            for addr in runner.addresses:
                self.bound.append((str(addr[0]), int(addr[1])))
        where = " and ".join(f"{h}:{p}" for h, p in self.bound)
        self.log(f"controller for {self.home.root} listening on {where}")

    async def aclose(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.notifier.aclose()


async def serve(
    home: FleetHome, settings: Settings, options: ServeOptions, clock: Clock | None = None
) -> None:
    """`cftui serve`: hold the home's controller lock, run until SIGTERM or
    Ctrl-C, then stop cleanly."""
    lock = ServeLock(home, options.listen)
    runtimes = Runtimes(home)
    controller = Controller(home, settings, options, runtimes, clock or Clock())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await controller.start()
        record_event(home, "serve", listen=[f"{h}:{p}" for h, p in controller.bound])
        await stop.wait()
        controller.log("stopping")
    finally:
        await controller.aclose()
        await runtimes.aclose()
        lock.release()
