"""The overview tab: services, ports, image, limits and the allowlist."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from textual.containers import VerticalScroll
from textual.widgets import Static

from cftui.humanize import format_uptime, human_count
from cftui.runtime.base import SERVICES
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
    """

    def __init__(self, bot: str) -> None:
        super().__init__()
        self.bot = bot

    def compose(self):
        yield Static(id="overview-services")
        yield Static(id="overview-config")

    def on_mount(self) -> None:
        self.app.fleet_signal.subscribe(self, self._sync)
        self._sync(None)

    def activate(self) -> None:
        self.focus()

    def _sync(self, _data: object) -> None:
        app = self.app
        config = app.configs.get(self.bot)
        status = app.statuses.get(self.bot)
        services = Table(title="Services", title_justify="left", expand=True)
        for col in ("Service", "State", "Health", "Uptime", "Image", "Detail"):
            services.add_column(col, no_wrap=col != "Detail")
        for svc in SERVICES:
            s = status.services.get(svc) if status else None
            if s is None:
                services.add_row(svc, "-", "-", "-", "-", "")
                continue
            word, _tone = state_look(s.state)
            # Rich tables read str cells as markup; the engine relays what
            # the gateway says (health output, exit reasons): Text cells.
            services.add_row(
                svc,
                agent_text(word),
                agent_text(s.health or "-"),
                format_uptime(s.uptime_seconds(app.clock())),
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
                f"{totals.calls} calls · {human_count(totals.tokens)} tokens" if totals else "-",
            ),
            ("Locked", "YES: kill switch engaged" if self.bot in app.locked else "no"),
            ("Code", str(app.home.code_dir(self.bot, mount=False))),
            ("State", str(app.home.state_dir(self.bot, mount=False))),
        ]
        if status and status.disk:  # runtimes that keep no tree here have none
            rows.insert(-2, ("Disk", status.disk.line()))
        for key, value in rows:
            info.add_row(key, agent_text(value))
        self.query_one("#overview-config", Static).update(info)
