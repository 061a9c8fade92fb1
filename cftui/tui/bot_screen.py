"""One bot: overview, logs, traffic, capture, snapshots, config and
proposals tabs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult, RenderResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Header, Static, TabbedContent, TabPane

from cftui.audit.traffic.log import TrafficLog
from cftui.runtime.base import INSTALLER
from cftui.tui.bot_actions import BOT_BINDINGS, INSTALL_LOG_BINDING, BotActionsMixin
from cftui.tui.footer import Footer
from cftui.tui.formatting import HEADER_ICON, state_look
from cftui.tui.locked_banner import LockedBanner
from cftui.tui.ops_line import OpsLine
from cftui.tui.tabs import TABS
from cftui.tui.vim_keys import NAV_BINDINGS, VimNavMixin

if TYPE_CHECKING:
    from textual import getters

    from cftui.tui.app import ClawFactoryApp


class LazyPane(TabPane):
    """A tab built the first time it is shown. Until then it says so: an
    empty widget renders its own name, and `TabPane#config` showed for a
    while when a tab key came right after a bot was opened."""

    def render(self) -> RenderResult:
        return Text("loading…", style="dim") if not self.children else super().render()


class BotScreen(VimNavMixin, BotActionsMixin, Screen):
    """A bot's screen, opened on one of its tabs."""

    if TYPE_CHECKING:  # Textual types self.app as App[object]
        app = getters.app(ClawFactoryApp)

    BINDINGS = [
        Binding("escape", "back", "Fleet", id="bot.back", tooltip="Back to the fleet"),
        Binding(
            "U",
            "unlock_bot",
            "Unlock",
            id="bot.unlock",
            tooltip="Lift the kill switch's lock on this bot only (asks first)",
        ),
        *(
            Binding(
                str(i + 1),
                f"tab('{t}')",
                t.capitalize(),
                show=False,
                id=f"bot.tab.{t}",
                tooltip=f"The {t} tab",
            )
            for i, t in enumerate(TABS)
        ),
        INSTALL_LOG_BINDING,
        *BOT_BINDINGS,
        *NAV_BINDINGS,
    ]

    def __init__(self, bot: str, tab: str = "overview", log_service: str = "gateway") -> None:
        super().__init__()
        self.bot = bot
        self.initial_tab = tab if tab in TABS else "overview"
        self.log_service = log_service  # what the Logs tab shows when first built
        self.traffic_log: TrafficLog | None = None
        self._activated: str | None = None

    def compose(self) -> ComposeResult:
        self.traffic_log = TrafficLog(self.app.home.traffic_log(self.bot))
        yield Header(show_clock=False, icon=HEADER_ICON)
        yield LockedBanner()
        yield Static("", id="bot-title")
        # Tabs are built the first time they are shown: opening a bot costs
        # one tab's widgets, not seven.
        with TabbedContent(initial=self.initial_tab, id="bot-tabs"):
            for tab in TABS:
                with LazyPane(tab.capitalize(), id=tab):
                    if tab == self.initial_tab:
                        yield self._make_tab(tab)
        yield OpsLine()
        yield Footer()

    def _make_tab(self, tab: str) -> Widget:
        from cftui.tui.capture_tab import CaptureTab
        from cftui.tui.config_tab import ConfigTab
        from cftui.tui.logs_tab import LogsTab
        from cftui.tui.overview_tab import OverviewTab
        from cftui.tui.proposals_tab import ProposalsTab
        from cftui.tui.snapshots_tab import SnapshotsTab
        from cftui.tui.traffic_tab import TrafficTab

        if tab == "traffic":
            assert self.traffic_log is not None
            return TrafficTab(self.traffic_log)
        if tab == "logs":
            return LogsTab(self.bot, self.log_service)
        factory = {
            "overview": OverviewTab,
            "capture": CaptureTab,
            "snapshots": SnapshotsTab,
            "config": ConfigTab,
            "proposals": ProposalsTab,
        }[tab]
        return factory(self.bot)

    def on_mount(self) -> None:
        self.app.fleet_signal.subscribe(self, self._sync)
        self._sync(None)
        # The initial tab, or the one a key asked for before the tabs were up.
        self.call_after_refresh(self._show, self.initial_tab, False)

    def on_unmount(self) -> None:
        if self.traffic_log is not None:
            self.traffic_log.close()

    def _sync(self, _data: object) -> None:
        app = self.app
        config = app.configs.get(self.bot)
        status = app.statuses.get(self.bot)
        state = "locked" if self.bot in app.locked else (status.state if status else "…")
        word, _tone = state_look(state)
        runtime = config.runtime if config else "?"
        capture = "capture ON" if config and config.capture else "capture off"
        self.query_one("#bot-title", Static).update(
            # The gap inside the bold run: SVG renderers drop a run's leading spaces.
            f"[b]{self.bot}  [/b]·  {runtime}  ·  {word}  ·  {capture}"
        )

    def current_bot(self) -> str | None:
        return self.bot

    def action_back(self) -> None:
        from cftui.tui.config_tab import ConfigTab
        from cftui.tui.confirm import ConfirmModal

        if not any(tab.unsaved() for tab in self.query(ConfigTab)):
            self.app.pop_screen()
            return

        def answered(leave: bool | None) -> None:
            if leave:
                self.app.pop_screen()
            else:
                self.show_tab("config")

        question = (
            f"{self.bot}'s config has unsaved edits.\n\n"
            "Leave and drop them? (ctrl+s in the Config tab saves them.)"
        )
        self.app.push_screen(ConfirmModal(question, "Drop edits"), answered)

    def action_tab(self, tab: str) -> None:
        self.show_tab(tab)

    def action_install_log(self) -> None:
        self.show_logs(INSTALLER)

    def show_logs(self, service: str) -> None:
        """The Logs tab on `service`'s log (built on it if never shown)."""
        from cftui.tui.logs_tab import LogsTab

        self.log_service = service
        for tab in self.query(LogsTab):
            tab.show_service(service)
        self.show_tab("logs")

    def show_tab(self, tab: str) -> None:
        if not self.is_mounted:
            # On a busy machine a key can arrive before the tabs are up:
            # before compose it picks the initial tab; after it, Textual
            # would refuse the tab ("No Tab with id") or its own mount would
            # switch back to the initial one, so on_mount shows it.
            self.initial_tab = tab
            return
        self._show(tab, again=True)  # the key of the tab on show: focus it again

    def _show(self, tab: str, again: bool) -> None:
        tabs = self.query_one(TabbedContent)
        if tabs.active == tab:
            self._activate(tab, again=again)
        else:
            tabs.active = tab  # TabActivated follows and activates it

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id:
            self._activate(event.pane.id)

    def _activate(self, tab: str, again: bool = False) -> None:
        """Activate a tab once per time it is shown: the mount, TabActivated
        and `show_tab` can all ask for the same one, and a second activation
        would take the focus back from where the operator has moved it."""
        if tab == self._activated and not again:
            return
        self._activated = tab
        self.call_later(self._activate_tab, tab)

    async def _activate_tab(self, tab: str) -> None:
        """Build the tab if it was never shown, then let it load and focus."""
        pane = self.query_one(f"#{tab}", TabPane)
        if not pane.children:
            await pane.mount(self._make_tab(tab))
        for child in pane.children:
            activate = getattr(child, "activate", None)
            if activate is not None:
                activate()
            else:
                child.focus()
