"""The overview tab: services, ports, image, limits, the allowlist, and
spend: today's, this month's, what the budgets leave, and a chart of the
last day's spend and calls per hour (so a loop shows before its budget
stops it); then the bot's history, its last operator actions from
audit/events.jsonl (read through `EventsReader`, in a worker)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Sparkline, Static

from cftui.audit.events import EventsReader, format_event
from cftui.audit.traffic.budget import budget_left
from cftui.audit.traffic.spend import hourly
from cftui.audit.traffic.totals import Totals
from cftui.errors import CftuiError
from cftui.fleet import BotConfig
from cftui.humanize import format_uptime, format_usd, human_bytes, human_count
from cftui.runtime.base import ServiceUsage
from cftui.runtime.status import RUNNING, SERVICES, STARTING, UNHEALTHY
from cftui.tui.formatting import agent_text, state_look

if TYPE_CHECKING:
    from textual import getters

    from cftui.tui.app import ClawFactoryApp


def budget_text(daily_tokens: int | None, per_minute: int | None) -> str:
    """The budget as words: "no tokens/day" read as zero allowed."""
    tokens = f"{human_count(daily_tokens)} tokens/day" if daily_tokens else "tokens/day unlimited"
    calls = f"{per_minute} requests/min" if per_minute else "requests/min unlimited"
    return f"{tokens} · {calls}"


class OverviewTab(VerticalScroll):
    """Re-rendered whenever the app's fleet state changes."""

    if TYPE_CHECKING:  # Textual types self.app as App[object]
        app = getters.app(ClawFactoryApp)

    DEFAULT_CSS = """
    OverviewTab { height: 1fr; padding: 0 1; }
    OverviewTab Static { margin-bottom: 1; }
    OverviewTab .spend-label { margin-bottom: 0; color: $text-muted; }
    OverviewTab Sparkline { height: 2; margin-bottom: 1; }
    """

    HOURS = 24
    CHART_EVERY_S = 15.0
    HISTORY_LINES = 10
    USAGE_EVERY_S = 5.0  # a sample takes the engine ~2 s per container
    HISTORY_EVERY_S = 2.0  # events.jsonl gains a line per operator action: polling is plenty

    @dataclass
    class SpendRead(Message):
        """The last day's totals per hour, read in a worker."""

        series: list[tuple[str, Totals]]

    @dataclass
    class UsageRead(Message):
        """CPU and memory per running service, sampled in a worker."""

        usage: dict[str, ServiceUsage]

    @dataclass
    class HistoryRead(Message):
        """The bot's events appended since the last read, as lines."""

        lines: list[str]
        skipped: int

    def __init__(self, bot: str) -> None:
        super().__init__()
        self.bot = bot
        self.series: list[tuple[str, Totals]] | None = None
        self._charted = -1  # today's call count the chart was read at
        self._chart_due = 0.0
        self.usage: dict[str, ServiceUsage] = {}
        self._usage_due = 0.0  # monotonic time of the next sample
        self.history: deque[str] = deque(maxlen=self.HISTORY_LINES)
        self._events: EventsReader | None = None
        self._events_lock = threading.Lock()  # one reader, one read at a time

    def compose(self):
        yield Static(id="overview-services")
        yield Static(id="overview-config")
        yield Static("Spend, last 24 h: reading…", id="overview-spend", classes="spend-label")
        yield Sparkline([], id="overview-spend-chart")
        yield Static("Calls per hour", id="overview-calls", classes="spend-label")
        yield Sparkline([], id="overview-calls-chart")
        yield Static("History: reading…", id="overview-history")

    def on_mount(self) -> None:
        self.app.fleet_signal.subscribe(self, self._sync)
        self._sync(None)
        self._events = EventsReader(self.app.home, self.bot)
        self.read_history()
        self.set_interval(self.HISTORY_EVERY_S, self.read_history)
        self.set_interval(self.USAGE_EVERY_S, self._usage_tick)

    def activate(self) -> None:
        self.focus()

    def _usage_tick(self) -> None:
        """Sample CPU and memory when due (the fleet's updates and a timer
        both ask; at most one sample every USAGE_EVERY_S)."""
        now = time.monotonic()
        if now >= self._usage_due:
            self._usage_due = now + self.USAGE_EVERY_S
            self.read_usage()

    def _sync(self, _data: object) -> None:
        self._usage_tick()
        app = self.app
        config = app.configs.get(self.bot)
        status = app.statuses.get(self.bot)
        services = Table(title="Services", title_justify="left", expand=True)
        for col in ("Service", "State", "Health", "Uptime", "CPU", "Memory", "Image", "Detail"):
            services.add_column(col, no_wrap=col != "Detail")
        for svc in SERVICES:
            s = status.services.get(svc) if status else None
            if s is None:
                services.add_row(svc, "-", "-", "-", "-", "-", "-", "")
                continue
            word, _tone = state_look(s.state)
            # Rich tables read str cells as markup; the engine relays what
            # the gateway says (health output, exit reasons): Text cells.
            services.add_row(
                svc,
                agent_text(word),
                agent_text(s.health or "-"),
                format_uptime(s.uptime_seconds(app.clock())),
                *usage_cells(self.usage.get(svc)),
                agent_text(s.image or "-"),
                agent_text(s.detail),
            )
        if status and status.error:
            services.caption = agent_text(f"runtime: {status.error}")
        self.query_one("#overview-services", Static).update(services)
        if config is None:
            self.query_one("#overview-config", Static).update("(not in fleet.toml)")
            return
        info = Table.grid(padding=(0, 2))
        info.add_column(style="bold", no_wrap=True)
        info.add_column()
        totals = app.totals.get(self.bot)
        month = app.month_totals.get(self.bot)
        rows = [
            ("Runtime", config.runtime),
            ("Gateway", f"{config.gateway} on http://127.0.0.1:{config.gateway_port}/"),
            ("Image", f"clawfactory/gateway-{self.bot}"),
            (
                "Limits",
                f"memory {config.limits.memory_mb} MiB · cpus {config.limits.cpus:g} · "
                f"pids {config.limits.pids}",
            ),
            (
                "Budget",
                budget_text(config.budget.daily_tokens, config.budget.requests_per_minute),
            ),
            ("Capture", "ON (MITM, encrypted)" if config.capture else "off"),
            ("Allowlist", ", ".join(config.egress_allow) or "(nothing: no egress)"),
            (
                "Today",
                f"{totals.calls} calls · {human_count(totals.tokens)} tokens · {spend_line(totals)}"
                if totals
                else "-",
            ),
            ("Month", spend_line(month) if month else "-"),
            ("Spend budget", money_budget(config, totals, month)),
            ("Locked", "YES: kill switch engaged" if self.bot in app.locked else "no"),
            ("Code", str(app.home.code_dir(self.bot, mount=False))),
            ("State", str(app.home.state_dir(self.bot, mount=False))),
        ]
        if status and status.disk:  # runtimes that keep no tree here have none
            rows.insert(-2, ("Disk", status.disk.line()))
        for key, value in rows:
            info.add_row(key, agent_text(value))
        self.query_one("#overview-config", Static).update(info)
        calls = totals.calls if totals else 0
        now = time.monotonic()
        # New calls today: chart again, at most every CHART_EVERY_S (a busy
        # bot's day is a scan), at once for the first calls seen.
        if calls != self._charted and (self._charted <= 0 or now >= self._chart_due):
            self._charted, self._chart_due = calls, now + self.CHART_EVERY_S
            self.read_spend()

    @work(thread=True, exclusive=True, group="overview-spend", exit_on_error=False)
    def read_spend(self) -> None:
        """The last day's spend per hour, from the end of traffic.jsonl."""
        series = hourly(self.app.home.traffic_log(self.bot), self.app.clock(), self.HOURS)
        self.post_message(self.SpendRead(series))

    @on(SpendRead)
    def _spend_read(self, message: SpendRead) -> None:
        self.series = message.series
        whole = Totals()
        for _hour, t in message.series:
            whole.add(t)
        peak = max(message.series, key=lambda kv: kv[1].cost_pico)
        label = f"Spend per hour, last {self.HOURS} h: {spend_line(whole)}"
        if peak[1].priced:
            label += f" · peak {format_usd(peak[1].cost_usd)} at {peak[0][11:13]}:00 UTC"
        self.query_one("#overview-spend", Static).update(label)
        self.query_one("#overview-spend-chart", Sparkline).data = [
            t.cost_usd for _h, t in message.series
        ]
        most = max(t.calls for _h, t in message.series)
        self.query_one("#overview-calls", Static).update(
            f"Calls per hour: {whole.calls:,} in {self.HOURS} h · busiest hour {most:,}"
        )
        self.query_one("#overview-calls-chart", Sparkline).data = [
            float(t.calls) for _h, t in message.series
        ]

    @work(exclusive=True, group="overview-usage", exit_on_error=False)
    async def read_usage(self) -> None:
        """One CPU/memory sample of the bot's running services (none while
        it is stopped: no engine call for nothing)."""
        config = self.app.configs.get(self.bot)
        status = self.app.statuses.get(self.bot)
        live = (RUNNING, STARTING, UNHEALTHY)
        if config is None or not any(
            s.state in live for s in (status.services.values() if status else ())
        ):
            self._usage_due = 0.0  # not running (or not known yet): ask again once it is
            if self.usage:
                self.post_message(self.UsageRead({}))
            return
        try:
            usage = await self.app.runtimes.for_bot(config).usage(config)
        except CftuiError:
            usage = {}  # the services table already says what the runtime reports
        self.post_message(self.UsageRead(usage))

    @on(UsageRead)
    def _usage_read(self, message: UsageRead) -> None:
        self.usage = message.usage
        self._sync(None)

    @work(thread=True, group="overview-history", exit_on_error=False)
    def read_history(self) -> None:
        """The bot's events appended since the last read (skipped when a
        read is still going: the reader remembers where it stopped)."""
        if self._events is None or not self._events_lock.acquire(blocking=False):
            return
        try:
            lines = [format_event(e) for e in self._events.read()]
            skipped = self._events.skipped
        finally:
            self._events_lock.release()
        self.post_message(self.HistoryRead(lines, skipped))

    @on(HistoryRead)
    def _history_read(self, message: HistoryRead) -> None:
        self.history.extend(message.lines)
        text = Text(f"History (audit/events.jsonl, last {self.HISTORY_LINES}, newest last)\n")
        text.stylize("bold")
        if self.history:
            text.append("\n".join(self.history))  # inert lines, appended as plain text
        else:
            text.append("no operator action recorded for this bot yet", style="dim")
        if message.skipped:
            text.append(f"\n{message.skipped} malformed line(s) skipped", style="dim")
        self.query_one("#overview-history", Static).update(text)

    @property
    def history_text(self) -> str:
        return str(self.query_one("#overview-history", Static).render())


def usage_cells(u: ServiceUsage | None) -> tuple[str, str]:
    """`12.3%` and `85.2 MiB / 2.0 GiB` as `docker stats` reads, or dashes."""
    if u is None:
        return "-", "-"
    cpu = "…" if u.cpu_percent is None else f"{u.cpu_percent:.1f}%"
    mem = human_bytes(u.mem_bytes) + (f" / {human_bytes(u.mem_limit)}" if u.mem_limit else "")
    return cpu, mem


def spend_line(t: Totals) -> str:
    """`$1.23 · 4 calls unpriced`: the unpriced calls apart, never $0."""
    cost = format_usd(t.cost_usd) if t.priced else "no priced call"
    return cost + (f" · {t.unpriced:,} call(s) unpriced" if t.unpriced else "")


def money_budget(config: BotConfig, today: Totals | None, month: Totals | None) -> str:
    """The money budgets and what they leave, or `none`."""
    parts = []
    if config.daily_usd_budget:
        parts.append(f"{format_usd(config.daily_usd_budget)}/day")
    if config.monthly_usd_budget:
        parts.append(f"{format_usd(config.monthly_usd_budget)}/month")
    if not parts:
        return "none (set daily_usd_budget, monthly_usd_budget in fleet.toml)"
    left = budget_left(config.daily_usd_budget, config.monthly_usd_budget, today, month)
    if left is not None:
        parts.append("spent" if left <= 0 else f"{format_usd(left)} left")
    parts.append(f"then {config.on_exhausted}")
    return " · ".join(parts)
