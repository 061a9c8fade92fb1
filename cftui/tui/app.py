"""The Textual app: the operator's console on the fleet.

The app owns the fleet state (configs, statuses, today's totals, locks) and
the workers that keep it fresh: a status round trip re-armed after each
answer, the runtime's events stream for live changes in between, and a thread
that reads fleet.toml, the locks and traffic.jsonl totals. Screens subscribe
to `fleet_signal` and render. Every operation runs in a worker; failures come
back as one notification each.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.actions import ActionParseResult
from textual.app import App
from textual.binding import Binding
from textual.content import Content
from textual.dom import DOMNode
from textual.reactive import reactive
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import Worker, WorkerState

from cftui.errors import CftuiError
from cftui.inert import inert
from cftui.mirrors import AuditMirrors
from cftui.proposals.counts import ProposalCounts, proposes
from cftui.runtime import Runtimes
from cftui.tui import readonly as ro
from cftui.tui.commands import FleetCommands
from cftui.tui.messages import (
    DailyTotalsUpdated,
    FleetStatusUpdated,
    KillFinished,
    OperationFinished,
    OperationProgress,
    ProposalCountsUpdated,
    ServiceStateChanged,
)
from cftui.tui.shell import Runner, run_suspended
from cftui.tui.themes import DARK, LIGHT, LIGHT_THEME

if TYPE_CHECKING:
    from cftui.audit.traffic.daily import DailyCounter
    from cftui.audit.traffic.totals import Totals
    from cftui.controller.lock import ControllerInfo
    from cftui.fleet import BotConfig, FleetHome
    from cftui.progress import ProgressEvent
    from cftui.proposals.counts import BotCount
    from cftui.tui.fleet_files import FleetFilesRead

# At exit, the runtimes' connections get this long to close (`on_unmount`).
CLOSE_TIMEOUT_S = 3.0
# What the first paint of the fleet does without: the domain modules of the
# status, the kill switch, the lifecycle and the totals load in a worker
# thread after it (imported on the event loop, they held the screen back
# by a second on a busy machine; issue #23: rows within 0.5 s).
DOMAIN_MODULES = (
    "cftui.lifecycle",
    "cftui.killswitch",
    "cftui.spend",
    "cftui.audit.traffic.daily",
    "cftui.controller.lock",
)

# What stops a running agent asks first (the focus on Cancel); the kill
# switch alone never asks (it loses nothing, and unlock undoes it).
DISRUPTIVE = {
    "stop": "Stop {bot}?\n\nIts stack stops cleanly; start it again with S.",
    "restart": "Restart {bot}?\n\nIts stack stops, then starts: the agent's work in flight is cut.",
    "rebuild": (
        "Rebuild {bot}?\n\nIts gateway image is built again from the approved code "
        "and the stack restarted: the agent's work in flight is cut."
    ),
}
# The same questions for the bots marked on the fleet screen.
DISRUPTIVE_MANY = {
    "stop": "Stop {n} bots: {bots}?\n\nTheir stacks stop cleanly, one after another.",
    "restart": (
        "Restart {n} bots: {bots}?\n\nEach stack stops, then starts, one after another: "
        "the agents' work in flight is cut."
    ),
}


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ClawFactoryApp(App[int]):
    """The fleet console. Build it with `make_app`."""

    CSS_PATH = "app.tcss"
    TITLE = "ClawFactory"
    SUB_TITLE = "fleet console · calls and tokens are today's (UTC)"
    COMMANDS = App.COMMANDS | {FleetCommands}

    def format_title(self, title: str, sub_title: str) -> Content:
        """`title — sub title`, the dash kept with the title: a separate
        dim run starting with a space loses it in SVG renderers."""
        if not sub_title:
            return Content(title)
        return Content.assemble(f"{title} — ", Content(sub_title).stylize("dim"))

    BINDINGS = [
        Binding(
            "ctrl+k",
            "kill_all",
            "KILL ALL",
            priority=True,
            id="app.kill_all",
            tooltip="Emergency stop: kill the whole fleet now, no confirmation; locked until unlock",
        ),
        Binding(
            "U",
            "unlock",
            "Unlock",
            id="app.unlock",
            tooltip="Lift the kill switch's lock on every locked bot (asks first)",
        ),
        Binding("question_mark,f1", "help", "Help", id="app.help", tooltip="Every key binding"),
        Binding("ctrl+t", "toggle_theme", "Light/dark", id="app.theme", tooltip="Light/dark theme"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit (the fleet keeps running)"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True, id="app.quit_now"),
    ]

    locked: reactive[frozenset[str]] = reactive(frozenset(), init=False)
    ops_text: reactive[str] = reactive("", init=False)

    def __init__(
        self,
        home: FleetHome,
        runtimes: Runtimes | None = None,
        *,
        open_bot: str | None = None,
        open_tab: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
        status_interval: float = 5.0,
        live: bool = True,
        theme: str = DARK,
        read_only: bool = False,
        keymap: Mapping[str, str] | None = None,
        shell_runner: Runner | None = None,
        early_files: Future[FleetFilesRead] | None = None,
    ) -> None:
        super().__init__()
        # fleet.toml, the locks and the first look, begun by the CLI before
        # Textual's import (`fleet_files.start_reading`).
        self._early_files = early_files
        self.shell_runner: Runner = shell_runner or run_suspended
        self.read_only = read_only
        self.user_keymap = dict(keymap or {})  # the checked keymap file (cftui.tui.keymap)
        if read_only:
            self.title = f"{self.TITLE} · READ-ONLY"
        self.home = home
        self.runtimes = runtimes or Runtimes(home)
        self._owns_runtimes = runtimes is None  # closed at exit (on_unmount)
        self.mirrors = AuditMirrors(self.runtimes)
        self.open_target = (open_bot, open_tab or "overview") if open_bot else None
        self.clock = clock
        self.status_interval = status_interval
        self.live = live
        self.register_theme(LIGHT_THEME)
        self.theme = theme
        self.configs: dict[str, BotConfig] = {}
        self.configs_loaded = False
        self.statuses: dict[str, Any] = {}
        self.status_errors: list[str] = []
        self.totals: dict[str, Totals] = {}  # today's, per bot
        self.month_totals: dict[str, Totals] = {}
        self.fleet_signal: Signal[None] = Signal(self, "fleet")
        self._counters: dict[str, DailyCounter] = {}
        self._month_counters: dict[str, DailyCounter] = {}
        self._ops: dict[str, str] = {}
        # The operation in flight per bot ("start"), shown in its row at once.
        self.operations: dict[str, str] = {}
        self._watching: set[tuple[str, str]] = set()  # (host, runtime kind) watched
        self._status_timer: Any = None
        self._domain_loaded = False
        self._status_full = False  # a status round trip answered (not only the first look)
        # The (host, runtime kind) places whose runtime objects were made in
        # a thread: a bot added later elsewhere has its made there too.
        self._places_made: set[tuple[str, str]] = set()
        self.proposal_counts = ProposalCounts()
        self._counting = False
        # A palette command for a bot's Proposals tab, run once it has loaded.
        self.pending_proposals: dict[str, str] = {}

    async def on_unmount(self) -> None:
        """The runtimes this app made closed at exit: other hosts' SSH links
        (and their forwarded sockets' directories), their audit mirrors, the
        engine clients; bounded, so a host that went away never holds the exit."""
        if self._owns_runtimes:
            with contextlib.suppress(Exception):  # exiting: nothing left to tell
                await asyncio.wait_for(self.runtimes.aclose(), CLOSE_TIMEOUT_S)

    # --- startup ----------------------------------------------------------
    def get_default_screen(self) -> Screen:
        """The fleet is the app's first screen, laid out with the app. A
        screen pushed from `on_mount` was laid out inside Textual's start-up
        batch, which drops that frame: the fleet then waited for some later
        change to be painted (~90 ms at a 20-bot start, bench/tui_startup.py)."""
        from cftui.tui.fleet_screen import FleetScreen

        return FleetScreen()

    def on_load(self) -> None:
        """The rows, when the CLI's early read has them by now: known before
        the fleet screen mounts, they are in its first paint (read after,
        they cost an empty table's paint, then a full one)."""
        early = self._early_files
        if early is not None and early.done() and early.exception() is None:
            self._take_files(early.result())

    def on_mount(self) -> None:
        # Worker threads (index, filter, totals) are CPU-bound Python: with
        # the default 5 ms GIL switch interval every wake-up of the UI thread
        # can wait that long behind them; 1 ms keeps keys and frames prompt.
        sys.setswitchinterval(0.001)
        if self.user_keymap:
            self.set_keymap(self.user_keymap)
        if self.configs_loaded:  # in on_load
            self.call_after_refresh(self._after_first_paint)
        elif self._early_files is not None:
            self._await_early_files(self._early_files)
        else:
            self.read_fleet_files(first_look=self._owns_runtimes)

    @property
    def bot_names(self) -> list[str]:
        return list(self.configs)

    # --- fleet files, totals (thread) ---------------------------------------
    @work(thread=True, exclusive=True, group="files", exit_on_error=False)
    def read_fleet_files(self, first_look: bool = False) -> None:
        """fleet.toml and the locks: all the fleet's rows need to be drawn
        (their totals and full statuses follow from other workers), with
        `first_look`, each row's state (`fleet_files.first_look`)."""
        from cftui.tui.fleet_files import read_fleet_files

        self.call_from_thread(self._files_read, read_fleet_files(self.home, first_look))

    @work(thread=True, exclusive=True, group="files", exit_on_error=False)
    def _await_early_files(self, early: Future[FleetFilesRead]) -> None:
        """The read the CLI began before Textual's import, not done when the
        app loaded (an engine slow to answer): waited for here, or, if it
        failed, done again."""
        from cftui.tui.fleet_files import read_fleet_files

        try:
            files = early.result()
        except Exception:
            files = read_fleet_files(self.home, self._owns_runtimes)
        self.call_from_thread(self._files_read, files)

    @work(thread=True, exclusive=True, group="totals", exit_on_error=False)
    def read_totals(self, names: list[str]) -> None:
        """Whether `cftui serve` runs, then today's (and this month's) calls,
        tokens and cost per bot from each traffic.jsonl."""
        from cftui.audit.traffic.daily import DailyCounter, month_start
        from cftui.controller.lock import running_controller

        self.call_from_thread(self._show_controller, running_controller(self.home))
        now = self.clock()
        totals, month = {}, {}
        for name in names:
            path = self.home.traffic_log(name)
            counter = self._counters.setdefault(name, DailyCounter(path))
            by_month = self._month_counters.setdefault(name, DailyCounter(path, month_start))
            try:
                totals[name] = replace(counter.update(now))
                month[name] = replace(by_month.update(now))
            except OSError:
                continue
        self.post_message(DailyTotalsUpdated(totals, month))

    def _show_controller(self, info: ControllerInfo | None) -> None:
        """The header says whether `cftui serve` holds this home."""
        pid = f" (pid {info.pid})" if info and info.pid else ""
        self.sub_title = self.SUB_TITLE + (f" · controller running{pid}" if info else "")

    def _files_read(self, files: FleetFilesRead) -> None:
        first = not self.configs_loaded
        self._take_files(files)
        if first:  # the rows go on screen first; what fills them in starts after
            self.call_after_refresh(self._after_first_paint)
        else:
            self.read_totals(list(self.configs))

    def _take_files(self, files: FleetFilesRead) -> None:
        self.configs = files.configs
        self.configs_loaded = True
        self.locked = files.locked
        if files.error:
            self.status_errors = [files.error]
        if files.first_look is not None and not self._status_full:
            self.statuses.update(files.first_look)
        self.fleet_signal.publish(None)

    def _after_first_paint(self) -> None:
        # `--open`'s screen too: pushed while the app is still starting (its
        # files read before its first frame), a screen waited unmounted.
        if self.open_target:
            bot, tab = self.open_target
            self.open_bot(bot, tab)
        self.refresh_status()
        self.read_totals(list(self.configs))
        self.count_proposals()

    @on(DailyTotalsUpdated)
    def _totals(self, message: DailyTotalsUpdated) -> None:
        self.totals.update(message.totals)
        self.month_totals.update(message.month)
        self.fleet_signal.publish(None)

    # --- status and events (async) ------------------------------------------
    @work(exclusive=True, group="status", exit_on_error=False)
    async def refresh_status(self) -> None:
        bots = list(self.configs.values())
        places = {(b.host, b.runtime) for b in bots}
        if not self._domain_loaded or places - self._places_made:
            # Imports and runtime objects (the Docker SDK, asyncssh for a
            # Lima VM or another host...) in a thread: on the event loop
            # they froze the screen just drawn, or, for a bot added to
            # fleet.toml while the app runs, the screen then.
            await asyncio.to_thread(self._load_domain, bots)
            self._domain_loaded = True
            self._places_made |= places
        from cftui import lifecycle

        statuses, errors = await lifecycle.fleet_status(self.home, bots, self.runtimes)
        self.post_message(FleetStatusUpdated(statuses, errors))
        if self.live:  # a bot moved or deleted meanwhile: its mirror follows it
            await self.mirrors.sync(bots)

    def _load_domain(self, bots: list[BotConfig]) -> None:
        import importlib

        for module in DOMAIN_MODULES:
            importlib.import_module(module)
        for bot in bots:
            try:
                self.runtimes.for_bot(bot)
            except CftuiError:
                continue  # the status says why, once

    @on(FleetStatusUpdated)
    def _status(self, message: FleetStatusUpdated) -> None:
        first, self._status_full = not self._status_full, True
        self.statuses.update(message.statuses)
        self.status_errors = message.errors
        self.fleet_signal.publish(None)
        if first:
            self.check_spend()
        if self.live:
            self._start_event_watchers()
            if self._status_timer is not None:
                self._status_timer.stop()
            self._status_timer = self.set_timer(self.status_interval, self._periodic)

    def _periodic(self) -> None:
        self.read_fleet_files()
        self.refresh_status()
        self.count_proposals()
        self.check_spend()

    # --- money budgets (async) -----------------------------------------------
    @work(exclusive=True, group="spend", exit_on_error=False)
    async def check_spend(self) -> None:
        """The budget thresholds the proxies' spend crossed: each told once
        per period (whoever looks first: this app, `--run` or `cftui
        serve`), and a bot whose `on_exhausted` is "stop" stopped."""
        from cftui import spend

        notices = await spend.check_budgets(self.home, self.runtimes, list(self.configs.values()))
        for notice in notices:
            spent = notice.percent >= 100
            self.notify(notice.summary(), severity="error" if spent else "warning", markup=False)

    # --- proposals counts (thread) -------------------------------------------
    def count_proposals(self) -> None:
        """Scan the bots whose turn it is, unless a scan still runs: a big
        tree is never scanned twice at once."""
        if self._counting or not self.configs:
            return
        self._counting = True
        self._count_proposals(list(self.configs))

    @work(thread=True, exclusive=True, group="proposals-count", exit_on_error=False)
    def _count_proposals(self, bots: list[str]) -> None:
        found: dict[str, BotCount] = {}
        try:
            found = self.proposal_counts.scan_due(self.home, bots)
        finally:
            self.post_message(ProposalCountsUpdated(found))

    @on(ProposalCountsUpdated)
    def _proposal_counts(self, message: ProposalCountsUpdated) -> None:
        self._counting = False
        for bot, count in self.proposal_counts.merge(message.counts):
            self.notify(
                inert(f"{proposes(bot, count)}: review them in its Proposals tab"),
                title="Proposals",
                markup=False,
            )
        if message.counts:
            self.fleet_signal.publish(None)

    def proposals_seen(self, bot: str, count: int | None) -> None:
        """A bot's Proposals tab scanned it: the table shows that count."""
        if bot not in self.proposal_counts.parts or self.proposal_counts.code_count(bot) != count:
            self.proposal_counts.seen(bot, count)
            self.fleet_signal.publish(None)

    def egress_requests_seen(self, bot: str, count: int) -> None:
        """A bot's Proposals tab read its egress requests: the table shows them."""
        if bot not in self.proposal_counts.parts or self.proposal_counts.egress_count(bot) != count:
            self.proposal_counts.egress_seen(bot, count)
            self.fleet_signal.publish(None)

    def proposals_command(self, bot: str, action: str) -> None:
        """A palette command on a bot's proposals: its tab opens and, once
        it has read them, asks about exactly what it shows."""
        if self.refuse_if_read_only(action):
            return
        self.pending_proposals[bot] = action
        self.open_bot(bot, "proposals")

    def _start_event_watchers(self) -> None:
        """One state stream per runtime: a kind on this machine, or another
        host's engine (whose stream also starts its bots' audit mirrors)."""
        places = {(c.host, c.runtime) for c in self.configs.values()}
        for place in places - self._watching:
            self._watching.add(place)
            self.run_worker(
                self._watch_events(place), group=f"events-{place[0]}-{place[1]}",
                exit_on_error=False,
            )  # fmt: skip

    async def _watch_events(self, place: tuple[str, str]) -> None:
        """The runtime's state stream; polling stays as the fallback."""
        try:
            bots = [c for c in self.configs.values() if (c.host, c.runtime) == place]
            runtime = self.runtimes.for_bot(bots[0])
            async for change in runtime.events(bots):
                self.post_message(ServiceStateChanged(change))
        except (CftuiError, OSError, NotImplementedError):
            pass
        finally:
            self._watching.discard(place)

    @on(ServiceStateChanged)
    def _state_changed(self, message: ServiceStateChanged) -> None:
        change = message.change
        status = self.statuses.get(change.bot)
        if status is None:
            return
        services = dict(status.services)
        from cftui.runtime.status import ServiceStatus

        old = services.get(change.service) or ServiceStatus(change.service)
        started = old.started_at
        if change.state == "running" and old.state != "running":
            started = change.ts
        services[change.service] = replace(
            old, state=change.state, started_at=started, detail=change.detail
        )
        self.statuses[change.bot] = replace(status, services=services)
        self.fleet_signal.publish(None)

    # --- the kill switch ----------------------------------------------------
    def action_kill_all(self) -> None:
        """Kill every bot now. No confirmation: it loses nothing."""
        names = frozenset(self.configs)
        self.locked = self.locked | names
        self.notify("KILL SWITCH: killing the whole fleet…", severity="error", timeout=3)
        self.run_worker(self._kill(None), group="kill", exit_on_error=False)

    def kill_bot(self, bot: str) -> None:
        self.locked = self.locked | {bot}
        self.run_worker(self._kill([bot]), group="kill", exit_on_error=False)

    async def _kill(self, names: list[str] | None) -> None:
        if names is None:
            bots = list(self.configs.values()) or await asyncio.to_thread(
                lambda: list(self.home.bots().values())
            )
        else:
            bots = [self.configs[n] for n in names if n in self.configs]
        from cftui import killswitch

        result = await killswitch.kill(self.home, bots, self.runtimes)
        self.post_message(KillFinished(result))

    @on(KillFinished)
    def _killed(self, message: KillFinished) -> None:
        result = message.result
        names = [r.bot for r in result.reports]
        text = (
            f"Killed {len(names)} bot(s) in {result.seconds * 1000:.0f} ms; "
            "locked until you unlock (U)."
        )
        failed = [inert(r.summary()) for r in result.reports if not r.ok]
        if failed:
            text += "\n" + "\n".join(failed[:5])
        self.notify(text, severity="error" if failed else "warning", timeout=8, markup=False)
        self.read_fleet_files()
        self.refresh_status()

    # --- read-only mode: the one gate for keys, footer clicks and the footer --
    async def run_action(
        self,
        action: str | ActionParseResult,
        default_namespace: DOMNode | None = None,
        namespaces: Mapping[str, DOMNode] | None = None,
    ) -> bool:
        """Every binding and footer click runs through here: in read-only
        mode an acting one is refused with one line (and counts as handled,
        so the key goes no further)."""
        if self.read_only:
            _target, name, params = self._parse_action(
                action, self if default_namespace is None else default_namespace, namespaces
            )
            if ro.refuses(name, params):
                self.notify(ro.refusal(name, params), severity="warning", markup=False)
                return True
        return await super().run_action(action, default_namespace, namespaces)

    def _check_action_state(self, action: str, default_namespace: DOMNode) -> bool | None:
        """What the footer asks of each binding: in read-only mode no acting
        key is shown."""
        if self.read_only:
            _target, name, params = self._parse_action(action, default_namespace)
            if ro.refuses(name, params):
                return False
        return super()._check_action_state(action, default_namespace)

    def refuse_if_read_only(self, action: str, parameters: tuple[object, ...] = ()) -> bool:
        """For callers outside the bindings (the palette): True, after the
        one-line refusal, when read-only mode refuses `action`."""
        if self.read_only and ro.refuses(action, parameters):
            self.notify(ro.refusal(action, parameters), severity="warning", markup=False)
            return True
        return False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "unlock":
            # Offered only when it can be done; a bot's screen has its own U,
            # which unlocks that bot alone, never the fleet.
            return bool(self.locked) and not self._on_bot_screen()
        return True

    def _on_bot_screen(self) -> bool:
        """Whether the screen shown is a bot's, without importing the bot
        screen: the footer asks on its first paint, and that module (with
        the traffic reader under it) held the fleet's first paint back. No
        bot screen exists before its module is loaded."""
        module = sys.modules.get("cftui.tui.bot_screen")
        return module is not None and isinstance(self.screen, module.BotScreen)

    def watch_locked(self) -> None:
        self.refresh_bindings()

    def action_unlock(self, bots: list[str] | None = None) -> None:
        """Unlock `bots` (every locked one when None), after asking."""
        if self.refuse_if_read_only("unlock"):
            return
        from cftui.tui.confirm import ConfirmModal

        names = sorted(self.locked if bots is None else self.locked & set(bots))
        if not names:
            self.notify(f"{bots[0]} is not locked." if bots else "Nothing is locked.")
            return
        question = (
            f"Unlock {', '.join(names)}?\n\nThe kill switch stops holding them: "
            "they can be started again (they stay stopped until you start them)."
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._unlock(names)
            else:
                self.notify(f"Unlock cancelled: {', '.join(names)} stay locked.")

        self.push_screen(ConfirmModal(question, "Unlock"), answered)

    @work(group="unlock", exit_on_error=False)
    async def _unlock(self, names: list[str]) -> None:
        """The markers on other hosts, then the locks here (`killswitch.lift`)."""
        from cftui import killswitch

        result = await killswitch.lift(self.home, names, self.runtimes)
        for bot, why in result.held.items():
            self.notify(
                f"{bot} stays locked: its host's kill marker stays ({why})",
                severity="warning",
                markup=False,
            )
        self.notify(f"Unlocked {', '.join(result.lifted) or 'nothing'}; start bots with S.")
        self._periodic()

    # --- bot operations ------------------------------------------------------
    def run_bot_action(self, bot: str, action: str) -> None:
        """Start/stop/restart/rebuild/snapshot/capture/kill on one bot."""
        if self.refuse_if_read_only("bot", (action,)):
            return
        config = self.configs.get(bot)
        if config is None:
            self.notify(f"no bot named {bot!r}", severity="error")
            return
        if action == "kill":
            self.kill_bot(bot)
            return
        if action == "shell":
            self.open_shell(config)
            return
        if action == "snapshot":
            from cftui.tui.prompt import PromptModal

            def labelled(label: str | None) -> None:
                if label is not None:
                    self._operation(bot, "snapshot", label)

            self.push_screen(PromptModal(f"Snapshot {bot}: label", "manual"), labelled)
            return
        if action in ("start", "restart", "rebuild") and bot in self.locked:
            self.notify(f"{bot} is locked by the kill switch: unlock (U) first", severity="error")
            return
        question = DISRUPTIVE.get(action)
        if question is not None:
            from cftui.tui.confirm import ConfirmModal

            def answered(yes: bool | None) -> None:
                if yes:
                    self._operation(bot, action)
                else:
                    self.notify(f"{action} {bot} cancelled")

            self.push_screen(ConfirmModal(question.format(bot=bot), action.capitalize()), answered)
            return
        self._operation(bot, action)

    def run_bot_action_many(
        self, bots: list[str], action: str, ran: Callable[[], None] = lambda: None
    ) -> None:
        """Start, stop or restart several bots (those marked on the fleet
        screen): one worker, a bot after another, each row showing its
        operation, after one question naming them all where one bot's
        action asks; `ran` once the action is under way."""
        if self.refuse_if_read_only("bot", (action,)):
            return
        unknown = [b for b in bots if b not in self.configs]
        if unknown:
            self.notify(f"no bot named {unknown[0]!r}", severity="error")
            return
        held = [b for b in bots if b in self.locked] if action in ("start", "restart") else []
        if held:
            self.notify(
                f"{', '.join(held)}: locked by the kill switch: unlock (U) first",
                severity="error",
                markup=False,
            )
            return

        def go() -> None:
            for bot in bots:
                self._set_op(bot, f"{action}: waiting")
                self.operations[bot] = action
            self.fleet_signal.publish(None)
            self.run_worker(
                self._run_many(bots, action),
                group="op-many",
                description=f"{action} {', '.join(bots)}",
                exit_on_error=False,
            )
            ran()

        question = DISRUPTIVE_MANY.get(action)
        if question is None:
            go()
            return
        from cftui.tui.confirm import ConfirmModal

        def answered(yes: bool | None) -> None:
            if yes:
                go()
            else:
                self.notify(f"{action} {', '.join(bots)} cancelled", markup=False)

        text = question.format(n=len(bots), bots=", ".join(bots))
        self.push_screen(ConfirmModal(text, action.capitalize()), answered)

    async def _run_many(self, bots: list[str], action: str) -> None:
        """Each bot's operation in turn (as `cftui start A B` runs them),
        each reported as if run alone."""
        for bot in bots:
            self._set_op(bot, f"{action}…")
            await self._run_operation(bot, action, None)

    def open_shell(self, config: BotConfig) -> None:
        """`cftui shell BOT` in the bot's gateway, the app suspended until
        the shell exits; refused in one line when there is no gateway up."""
        from cftui.tui import shell

        bot = config.name
        why = shell.not_running(bot, self.statuses.get(bot))
        if why is not None:
            self.notify(why, severity="warning", markup=False)
            return
        try:
            argv = self.runtimes.for_bot(config).shell_argv(config, shell.SHELL_SERVICE, tty=True)
            code = self.shell_runner(self, argv)
        except CftuiError as exc:
            self.notify(inert(f"shell {bot}: {exc}"), severity="error", markup=False)
            return
        self.notify(inert(shell.outcome(bot, code)), markup=False)
        self.refresh_status()

    def _operation(self, bot: str, action: str, arg: str | None = None) -> None:
        self._set_op(bot, f"{action}…")
        self.operations[bot] = action
        self.fleet_signal.publish(None)
        self.run_worker(
            self._run_operation(bot, action, arg),
            group=f"op-{bot}",
            description=f"{action} {bot}",
            exit_on_error=False,
        )

    async def _run_operation(self, bot: str, action: str, arg: str | None) -> None:
        from cftui import lifecycle

        config = self.configs[bot]

        def progress(event: ProgressEvent) -> None:
            self.post_message(OperationProgress(bot, action, event))

        notes: list[str] = []
        outcome = {"start": "running", "restart": "running", "rebuild": "running"}.get(
            action, "stopped" if action == "stop" else "done"
        )
        try:
            if action == "start":
                notes = await lifecycle.start(self.home, config, self.runtimes, progress)
            elif action == "stop":
                await lifecycle.stop(self.home, config, self.runtimes)
            elif action == "restart":
                notes = await lifecycle.restart(self.home, config, self.runtimes, progress)
            elif action == "rebuild":
                notes = await lifecycle.rebuild(self.home, config, self.runtimes, progress)
            elif action == "capture":
                from cftui import egress_control

                result = await asyncio.to_thread(
                    egress_control.set_capture, self.home, bot, not config.capture
                )
                outcome = "capture on" if result.bot.capture else "capture off"
            elif action == "snapshot":
                from cftui import snapshots

                runtime = self.runtimes.for_bot(config)
                info = await snapshots.snapshot(
                    self.home, config, arg or None, runtime=runtime, progress=progress
                )
                outcome = f"created {info.name}"  # as the Snapshots tab says it
            else:
                raise CftuiError(f"unknown action {action!r}")
        except CftuiError as exc:
            self.post_message(OperationFinished(bot, action, str(exc)))
        except Exception as exc:  # a worker must report, never die silently
            self.post_message(OperationFinished(bot, action, f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(OperationFinished(bot, action, notes=tuple(notes), outcome=outcome))

    @on(OperationProgress)
    def _progress(self, message: OperationProgress) -> None:
        ev = message.event
        pct = f" {100 * ev.done / ev.total:.0f}%" if ev.total else ""
        self._set_op(message.bot, f"{message.action}{pct} {ev.message}".strip())

    @on(OperationFinished)
    def _finished(self, message: OperationFinished) -> None:
        self._set_op(message.bot, None)
        self.operations.pop(message.bot, None)
        if message.error:
            self.notify(
                inert(f"{message.action} {message.bot}: {message.error}"),
                severity="error",
                timeout=8,
                markup=False,
            )
        else:
            self.notify(inert(f"{message.bot}: {message.outcome}"), markup=False)
        for note in message.notes:
            self.notify(inert(note), severity="warning", timeout=12, markup=False)
        self._periodic()

    def _set_op(self, bot: str, text: str | None) -> None:
        if text is None:
            self._ops.pop(bot, None)
        else:
            self._ops[bot] = text
        self.ops_text = "  ·  ".join(f"{b}: {t}" for b, t in sorted(self._ops.items()))

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """One place where an unexpected worker error becomes a notification."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            text = (
                str(error) if isinstance(error, CftuiError) else f"{type(error).__name__}: {error}"
            )
            self.notify(
                inert(f"{event.worker.name or 'worker'}: {text}"),
                severity="error",
                timeout=8,
                markup=False,
            )

    # --- navigation, help, theme ---------------------------------------------
    def open_bot(self, bot: str, tab: str = "overview", log_service: str | None = None) -> None:
        from cftui.tui.bot_screen import BotScreen

        if bot not in self.configs:
            self.notify(f"no bot named {bot!r}", severity="error")
            return
        screen = self.screen
        if isinstance(screen, BotScreen) and screen.bot == bot:
            if log_service is not None:
                screen.show_logs(log_service)
            else:
                screen.show_tab(tab)
            return
        self.push_screen(BotScreen(bot, tab, log_service or "gateway"))

    def action_help(self) -> None:
        from cftui.tui.help_screen import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        groups = binding_groups()
        if self.user_keymap:  # the keys as the keymap file set them
            keymap = self.user_keymap
            groups = [
                (scope, [replace(b, key=keymap.get(b.id or "", b.key)) for b in bindings])
                for scope, bindings in groups
            ]
        self.push_screen(HelpScreen(groups))

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.theme == DARK else DARK


def binding_groups() -> list[tuple[str, list[Binding]]]:
    """Every binding of every screen and tab, for the help screen."""
    from cftui.tui.bot_screen import BotScreen
    from cftui.tui.capture_tab import CaptureTab
    from cftui.tui.config_tab import ConfigTab
    from cftui.tui.confirm import ConfirmModal
    from cftui.tui.fleet_screen import FleetScreen
    from cftui.tui.logs_tab import LogsTab
    from cftui.tui.proposals_tab import ProposalsTab
    from cftui.tui.snapshots_tab import SnapshotsTab
    from cftui.tui.traffic_tab import TrafficTab
    from cftui.tui.traffic_view import TrafficView

    def own(cls: type[DOMNode]) -> list[Binding]:
        return [b for b in cls.BINDINGS if isinstance(b, Binding)]

    return [
        ("Everywhere", own(ClawFactoryApp)),
        ("Fleet", own(FleetScreen)),
        ("Bot", own(BotScreen)),
        ("Traffic", own(TrafficTab) + own(TrafficView)),
        ("Capture", own(CaptureTab)),
        ("Snapshots", own(SnapshotsTab)),
        ("Config", own(ConfigTab)),
        ("Proposals", own(ProposalsTab)),
        ("Logs", own(LogsTab)),
        ("Confirm", own(ConfirmModal)),
    ]


def make_app(
    home: FleetHome,
    runtimes: Runtimes | None = None,
    *,
    open_bot: str | None = None,
    open_tab: str | None = None,
    **options: Any,
) -> ClawFactoryApp:
    """The one factory the CLI and the tests build the app with."""
    return ClawFactoryApp(home, runtimes, open_bot=open_bot, open_tab=open_tab, **options)


def run_app(
    home: FleetHome,
    open_bot: str | None = None,
    open_tab: str | None = None,
    *,
    read_only: bool = False,
    keymap: Mapping[str, str] | None = None,
    early_files: Future[FleetFilesRead] | None = None,
) -> int:
    app = make_app(
        home,
        open_bot=open_bot,
        open_tab=open_tab,
        read_only=read_only,
        keymap=keymap,
        early_files=early_files,
    )
    app.run()
    return app.return_code or 0
