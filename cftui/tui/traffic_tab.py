"""The traffic tab: live calls of a bot, a filter, totals and a detail pane."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group
from rich.highlighter import JSONHighlighter
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, ProgressBar, Static
from textual.worker import get_current_worker

from cftui.audit.traffic.fields import record_cost
from cftui.audit.traffic.filter import TrafficFilter
from cftui.audit.traffic.log import FilterResult, TrafficLog
from cftui.audit.traffic.totals import Totals
from cftui.humanize import format_usd, human_count
from cftui.inert import inert_json_text
from cftui.tui.formatting import agent_text
from cftui.tui.traffic_view import TrafficView, header_text

DETAIL_MAX = 20_000  # characters of a body shown before "…"


def body_view(value: Any) -> Any:
    """A body the agent (or its provider) wrote, shown inert: JSON with the
    characters JSON leaves raw escaped, text with its controls escaped."""
    if isinstance(value, dict | list):
        # Highlighted as it is: rich's JSON() would parse and re-serialise
        # it, putting back the raw C1 and bidi characters just escaped.
        text = inert_json_text(json.dumps(value, indent=2, ensure_ascii=False))
        shown = Text(text if len(text) <= DETAIL_MAX else text[:DETAIL_MAX] + "\n…")
        JSONHighlighter().highlight(shown)
        return shown
    if value is None:
        return Text("(none)", style="dim")
    text = str(value)
    return agent_text(
        text if len(text) <= DETAIL_MAX else text[:DETAIL_MAX] + "\n…", multiline=True
    )


def render_detail(record: dict[str, Any] | None, started_only: bool = False) -> Any:
    """A call pretty printed: summary, request, response."""
    if record is None and started_only:
        return Text(
            "This line is where a call started; the call, finished, is its end line.",
            style="dim",
        )
    if record is None:
        return Text("This line is torn or malformed; it was skipped.", style="dim")
    head = Text()
    for key in ("ts", "id", "provider", "method", "path", "model", "status", "stream"):
        head.append(f"{key}: ", style="bold")
        head.append(agent_text(record.get(key)))
        head.append("\n")
    head.append("tokens: ", style="bold")
    head.append(
        agent_text(
            f"in {record.get('tokens_in')} (cache read {record.get('cache_read')}, "
            f"write {record.get('cache_write')}), out {record.get('tokens_out')}"
        )
    )
    head.append("\ncost: ", style="bold")
    head.append(agent_text(_detail_cost(record)))
    head.append("\ntiming: ", style="bold")
    head.append(
        agent_text(f"ttfb {record.get('ttfb_ms')} ms, total {record.get('duration_ms')} ms")
    )
    head.append("\n")
    if record.get("error"):
        head.append("error: ", style="bold")
        head.append(agent_text(record.get("error"), "bold red"))
        head.append("\n")
    return Group(
        head,
        Text("request", style="bold underline"),
        body_view(record.get("request")),
        Text("response", style="bold underline"),
        body_view(record.get("response")),
    )


def _detail_cost(record: dict[str, Any]) -> str:
    cost = record_cost(record)
    if cost is not None:
        return f"{format_usd(cost)} (${cost:.6f})"
    why = record.get("cost_status")
    return f"unpriced ({why})" if isinstance(why, str) and why else "unpriced"


def cost_summary(t: Totals) -> str:
    """The cost of a set of calls, with the unpriced ones apart (not $0)."""
    text = f"cost {format_usd(t.cost_usd)}" if t.priced else "cost -"
    return text + (f" + {t.unpriced:,} unpriced" if t.unpriced else "")


class TrafficTab(Vertical):
    """One bot's traffic.jsonl, followed live."""

    DEFAULT_CSS = """
    TrafficTab { height: 1fr; }
    TrafficTab #traffic-bar { height: 3; }
    TrafficTab #traffic-filter { width: 1fr; }
    TrafficTab #traffic-progress { width: 30; display: none; padding: 1 1; }
    TrafficTab #traffic-progress.-busy { display: block; }
    TrafficTab #traffic-header { height: 1; background: $boost; text-style: bold; padding: 0 0; }
    TrafficTab #traffic-detail { height: 40%; border-top: solid $primary; padding: 0 1; }
    TrafficTab #traffic-detail.-hidden { display: none; }
    TrafficTab #traffic-totals { height: 1; background: $boost; color: $text-muted; padding: 0 1; }
    """

    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="traffic.filter", tooltip="Edit the filter"),
        Binding("d", "toggle_detail", "Detail", id="traffic.detail", tooltip="Show/hide detail"),
        Binding(
            "enter",
            "open_detail",
            "Read",
            id="traffic.read",
            tooltip="The call's detail, shown and focused (j/k scroll it)",
        ),
        Binding(
            "ctrl+l", "clear_filter", "Clear filter", id="traffic.clear", tooltip="Show every call"
        ),
    ]

    class FilterDone(Message):
        def __init__(self, flt: TrafficFilter, result: FilterResult) -> None:
            super().__init__()
            self.flt = flt
            self.result = result

    class FilterProgress(Message):
        def __init__(self, fraction: float) -> None:
            super().__init__()
            self.fraction = fraction

    def __init__(self, log: TrafficLog, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tlog = log
        self.flt = TrafficFilter()
        self._totals_text = "totals: counting…"

    def compose(self) -> ComposeResult:
        with Horizontal(id="traffic-bar"):
            yield Input(
                placeholder="filter: provider:openai model:gpt status:5xx free text  (enter)",
                id="traffic-filter",
            )
            yield ProgressBar(total=1.0, show_eta=False, id="traffic-progress")
        yield Static(header_text(), id="traffic-header")
        yield TrafficView(self.tlog, id="traffic-view")
        with VerticalScroll(id="traffic-detail"):
            yield Static(Text("Select a call to see its request and response.", style="dim"))
        yield Static(self._totals_text, id="traffic-totals")

    @property
    def view(self) -> TrafficView:
        return self.query_one(TrafficView)

    def activate(self) -> None:
        """Start reading (once) and focus the table, unless the focus is
        already in the tab (the tab's key pressed again while it is shown
        keeps the operator's place, the filter field included)."""
        self.view.start()
        if not self.has_focus_within:
            self.view.focus()

    def action_focus_filter(self) -> None:
        # At once: `focus()` queues the change behind keys already read, which
        # would reach the bot's keys instead (s starts it, x stops it).
        self.screen.set_focus(self.query_one("#traffic-filter", Input))

    async def on_key(self, event: events.Key) -> None:
        """Keys typed right after '/' (fast, or tmux send-keys): Textual hands
        each key to the widget focused when it was read, and '/' moves the
        focus only once handled, so the keys behind it reach the table and
        come up here. '/' moves the focus at once, and while the field has it
        the characters coming up (the field keeps those it gets itself) are
        typed into it and Enter submits it: none reaches the bot's keys (s
        starts the bot, x stops it)."""
        field = self.query_one("#traffic-filter", Input)
        if self.screen.focused is not field:
            if event.key == "slash":
                event.stop()
                self.action_focus_filter()
        elif event.is_printable and event.character:
            event.stop()
            field.insert_text_at_cursor(event.character)
        elif event.key == "enter":
            event.stop()
            await field.action_submit()

    def action_toggle_detail(self) -> None:
        self.query_one("#traffic-detail").toggle_class("-hidden")

    def action_open_detail(self) -> None:
        detail = self.query_one("#traffic-detail")
        detail.remove_class("-hidden")
        self.screen.set_focus(detail)

    def action_clear_filter(self) -> None:
        self.query_one("#traffic-filter", Input).value = ""
        self._apply(TrafficFilter())

    @on(Input.Submitted, "#traffic-filter")
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            flt = TrafficFilter.parse(event.value)
        except ValueError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self._apply(flt)
        self.screen.set_focus(self.view)  # at once, as in action_focus_filter

    def _apply(self, flt: TrafficFilter) -> None:
        self.flt = flt
        if flt.empty:
            self.workers.cancel_group(self, "traffic-filter")
            self._busy(False)
            self.view.set_filter_result(flt, None, len(self.tlog), Totals())
            return
        self._busy(True)
        self.view.pause_counting()  # the filter's own totals replace it
        self._run_filter(flt)

    def _busy(self, busy: bool) -> None:
        bar = self.query_one("#traffic-progress", ProgressBar)
        bar.set_class(busy, "-busy")
        bar.update(progress=0.0)

    @work(thread=True, exclusive=True, group="traffic-filter", exit_on_error=False)
    def _run_filter(self, flt: TrafficFilter) -> None:
        worker = get_current_worker()
        result = self.tlog.filter(
            flt,
            progress=lambda f: self.post_message(self.FilterProgress(f)),
            cancelled=lambda: worker.is_cancelled,
        )
        if not result.cancelled and not worker.is_cancelled:
            self.post_message(self.FilterDone(flt, result))

    @on(FilterProgress)
    def _filter_progress(self, message: FilterProgress) -> None:
        self.query_one("#traffic-progress", ProgressBar).update(progress=message.fraction)

    @on(FilterDone)
    def _filter_done(self, message: FilterDone) -> None:
        if message.flt != self.flt:
            return
        self._busy(False)
        result = message.result
        self.view.set_filter_result(message.flt, result.lines, result.covered, result.totals)
        if not result.lines:  # else the pane kept the call shown before
            self._detail(
                Text(f"No calls match «{message.flt}» (ctrl+l shows every call).", style="dim")
            )

    @on(TrafficView.Refilter)
    def _refilter(self) -> None:
        self._apply(self.flt)

    @on(TrafficView.Highlighted)
    def _highlighted(self, message: TrafficView.Highlighted) -> None:
        self._detail(render_detail(message.record, message.started_only))

    def _detail(self, shown: Any) -> None:
        """Show `shown` in the detail pane from its top (another call's
        detail does not open at the previous one's scroll position)."""
        self.query_one("#traffic-detail Static", Static).update(shown)
        self.query_one("#traffic-detail", VerticalScroll).scroll_home(animate=False)

    @on(TrafficView.TotalsChanged)
    def _totals(self, message: TrafficView.TotalsChanged) -> None:
        t = message.totals
        view = self.view
        scope = f"filter «{self.flt}»" if not self.flt.empty else "all calls"
        text = (
            f"{scope}: {t.calls:,} calls · tokens in {human_count(t.tokens_in)} "
            f"out {human_count(t.tokens_out)} · {cost_summary(t)} · errors {t.errors:,}"
        )
        if view.counting:
            text += " · counting…"
        if self.tlog.malformed:
            text += f" · skipped {len(self.tlog.malformed)} malformed"
        if view.pending:
            text += f" · {view.pending} new below (End to follow)"
        self.query_one("#traffic-totals", Static).update(Text(text))  # the filter is typed text
