"""`cftui --run BOT`: a bot's stack in the foreground, without the app.

Brings the stack up, then prints, one line each, its state changes (from
the runtime's event stream), its services' log lines and its LLM calls
(followed from `traffic.jsonl` with the shared reader), until Ctrl-C or
SIGTERM. The stop goes through the kill switch's one implementation
(CONTRACTS §6: network cut first, gateway killed, the rest stopped, in
parallel) without locking the bot: this is the operator's own clean stop.

No Textual import here (checked by the foundation's import-hygiene test).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cftui import killswitch, lifecycle, locks, spend
from cftui.audit.traffic.display import format_call
from cftui.audit.traffic.log import Change, TrafficLog
from cftui.errors import CftuiError
from cftui.fleet import BotConfig, FleetHome
from cftui.inert import inert
from cftui.progress import ProgressEvent
from cftui.runtime import Runtimes
from cftui.runtime.base import Runtime
from cftui.runtime.status import RUNNING, SERVICES

Out = Callable[[str], None]
SPEND_CHECK_S = 2.0  # how often the money budgets are looked at (a small file each)


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _clock(ts: datetime | None = None) -> str:
    return (ts or datetime.now(UTC)).astimezone(UTC).strftime("%H:%M:%S")


class _Watch:
    """The printing side of a run: events, logs, traffic; one task each."""

    def __init__(
        self,
        home: FleetHome,
        bots: Sequence[BotConfig],
        runtimes: Runtimes,
        out: Out,
        stop: asyncio.Event | None = None,
    ):
        self.home = home
        self.bots = list(bots)
        self.runtimes = runtimes
        self.out = out
        self.stop = stop  # set when every bot of the run was stopped for its budget
        self.spent: set[str] = set()
        self.started: dict[tuple[str, str], asyncio.Event] = {}
        self.stop_threads = threading.Event()
        self.tasks: list[asyncio.Task] = []

    def _runtime(self, bot: BotConfig) -> Runtime:
        return self.runtimes.for_bot(bot)

    def start(self) -> None:
        # One state stream per runtime (another host's engine is one of its own).
        by_place: dict[tuple[str, str], list[BotConfig]] = {}
        for bot in self.bots:
            by_place.setdefault((bot.host, bot.runtime), []).append(bot)
            for service in SERVICES:
                self.started[(bot.name, service)] = asyncio.Event()
                self.tasks.append(asyncio.create_task(self._logs(bot, service)))
            began = _size(self.home.traffic_log(bot.name))  # now, not when the thread runs
            self.tasks.append(asyncio.create_task(self._traffic(bot, began)))
        for group in by_place.values():
            self.tasks.append(asyncio.create_task(self._events(group)))
        if any(b.daily_usd_budget or b.monthly_usd_budget for b in self.bots):
            self.tasks.append(asyncio.create_task(self._spend()))

    async def _spend(self) -> None:
        """The money budgets: each threshold crossed, once, and the bots
        stopped for a spent budget (`cftui.spend`); the run ends when all are."""
        while True:
            try:
                notices = await spend.check_budgets(self.home, self.runtimes, self.bots)
            except (CftuiError, OSError) as exc:
                self.out(f"{_clock()} budgets no longer checked: {exc}")
                return
            for notice in notices:
                self.out(f"{_clock()} [{notice.bot}] spend: {notice.summary()}")
                if notice.stopped:
                    self.spent.add(notice.bot)
            if self.stop is not None and self.spent >= {b.name for b in self.bots}:
                self.stop.set()
                return
            await asyncio.sleep(SPEND_CHECK_S)

    async def close(self) -> None:
        self.stop_threads.set()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task

    async def _events(self, bots: list[BotConfig]) -> None:
        try:
            async for change in self._runtime(bots[0]).events(bots):
                detail = f" ({change.detail})" if change.detail else ""
                self.out(
                    f"{_clock(change.ts)} [{change.bot}] {change.service}: {change.state}{detail}"
                )
                started = self.started.get((change.bot, change.service))
                if change.state == RUNNING and started is not None:
                    started.set()
        except CftuiError as exc:
            self.out(f"{_clock()} state changes no longer followed: {exc}")

    async def _logs(self, bot: BotConfig, service: str) -> None:
        """Follow a service's log; after it stops, follow again once it restarts."""
        tail = 20
        started = self.started[(bot.name, service)]
        while True:
            started.clear()
            try:
                async for line in self._runtime(bot).logs(bot, service, follow=True, tail=tail):
                    self.out(f"{_clock(line.ts)} [{bot.name}/{service}] {line.text}")
            except CftuiError as exc:
                self.out(f"{_clock()} [{bot.name}/{service}] log not followed: {exc}")
            tail = 0
            await started.wait()

    async def _traffic(self, bot: BotConfig, began: int) -> None:
        """One line per LLM call, from the calls made after the run began
        (at byte `began` of the log: a call the log gained before this thread
        first looked, on a loaded machine, is still the run's)."""
        log = TrafficLog(self.home.traffic_log(bot.name))
        loop = asyncio.get_running_loop()

        def follow() -> None:
            if log.open():
                log.scan()
            shown = len(log)
            while shown and (span := log.span(shown - 1)) is not None and span[0] >= began:
                shown -= 1

            def show_new() -> None:
                nonlocal shown
                end = len(log)
                for i in range(shown, end):
                    record = log.call(i)  # a call once, when it ends
                    if record is not None:
                        line = f"{_clock()} [{bot.name}/llm] {format_call(record)}"
                        loop.call_soon_threadsafe(self.out, line)
                shown = end

            def on_change(change: Change) -> None:
                nonlocal shown
                if change.reset:
                    shown = 0
                show_new()

            show_new()
            log.follow(on_change, self.stop_threads)

        try:
            await asyncio.to_thread(follow)
        finally:
            self.stop_threads.set()
            log.close()


def _inert_lines(out: Out) -> Out:
    return lambda line: out(inert(line))


class Interrupted(Exception):
    """Raised from the progress callback to end a build the operator stopped."""


def _progress(out: Out, stop: asyncio.Event) -> Callable[[ProgressEvent], None]:
    last: dict[str, str] = {}

    def show(event: ProgressEvent) -> None:
        # Builds run in threads that cannot be cancelled from outside; they
        # report progress often, so that is where a stop request ends them.
        if stop.is_set():
            raise Interrupted("stopped by the operator")
        # Build steps are noisy: show step lines and the task's phases only.
        text = event.message
        if not text or last.get(event.task) == text:
            return
        if event.total is None and not text.startswith(("building", "built", "pulling")):
            return
        last[event.task] = text
        out(f"{_clock()} {event.task}: {text}")

    return show


async def run_bots(
    home: FleetHome,
    bots: Sequence[BotConfig],
    *,
    out: Out = _stdout,
    err: Out = _stderr,
    stop: asyncio.Event | None = None,
) -> int:
    """Start the bots, print until `stop` (or SIGINT/SIGTERM), stop them.

    0 on a clean stop; 1 with one line on `err` when a stack cannot start or
    the stop did not go cleanly.
    """
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    # Every line shows what the agent wrote (its logs, its model names, its
    # build output): each is made inert where it is printed, one line each.
    out, err = _inert_lines(out), _inert_lines(err)
    runtimes = Runtimes(home)
    watch = _Watch(home, bots, runtimes, out, stop)
    code = 0
    try:
        progress = _progress(out, stop)
        starting = asyncio.gather(*(lifecycle.start(home, b, runtimes, progress) for b in bots))
        stopper = asyncio.create_task(stop.wait())
        racing: set[asyncio.Future[Any]] = {starting, stopper}
        await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            if not starting.done():
                starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
            out(f"{_clock()} interrupted while starting")
        elif starting.exception() is None:
            for note in (n for notes in starting.result() for n in notes):
                err(f"cftui: {note}")  # an unbounded or full disk
            out(f"{_clock()} {', '.join(b.name for b in bots)}: up; Ctrl-C stops")
            watch.start()
            await stopper
        else:
            stopper.cancel()
            exc = starting.exception()
            err(f"cftui: {exc}" if isinstance(exc, CftuiError) else f"cftui: {exc!r}")
            code = 1
    finally:
        await watch.close()
        result = await killswitch.kill(home, bots, runtimes, lock=False, action="run-stop")
        for report in result.reports:
            out(f"{_clock()} stopped {report.summary()}")
        await runtimes.aclose()
        for sig in installed:
            loop.remove_signal_handler(sig)
    if code == 0 and not result.ok:
        err("cftui: the stop did not go cleanly: " + "; ".join(r.summary() for r in result.reports))
        code = 1
    return code


def run(home: FleetHome, names: Sequence[str]) -> int:
    """`cftui --run BOT`: the blocking entry point."""
    bots = [home.bot(n) for n in names]
    for bot in bots:
        locks.ensure_unlocked(home, bot.name)
    return asyncio.run(run_bots(home, bots))


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
