"""The traffic table: a Line-API scroll view over a `TrafficLog`.

Only visible rows are rendered. A row whose record is not parsed yet is
asked of a reader thread (pread + parse) and drawn blank until it arrives, so
the UI thread never reads the file. A follower thread polls for appends,
truncation and rotation, and matches appended lines against the active
filter; it talks to the widget only through messages.
"""

from __future__ import annotations

import queue
import threading
from array import array
from dataclasses import dataclass, field
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import on, work
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from cftui.audit.traffic.fields import record_cost
from cftui.audit.traffic.filter import TrafficFilter
from cftui.audit.traffic.log import MISS, TrafficLog
from cftui.audit.traffic.totals import Totals
from cftui.humanize import format_usd, human_count
from cftui.inert import inert
from cftui.tui.formatting import status_tone

COLUMNS: tuple[tuple[str, int], ...] = (
    ("Time", 12),
    ("Provider", 10),
    ("Model", 25),
    ("HTTP", 4),  # "St" had no legend; a status fits in 4 with its space
    ("In", 7),
    ("Out", 7),
    ("Cost", 8),
)
COLUMNS += (("TTFB", 8), ("Duration", 9), ("", 2))


# The one-glyph flags of the last column, said once, beside its head.
LEGEND = "  ⇣=stream !=error"


def header_text() -> str:
    heads = " ".join(
        f"{name:>{w}}" if name in ("In", "Out", "Cost", "TTFB", "Duration") else f"{name:<{w}}"
        for name, w in COLUMNS
    )
    return heads + LEGEND


def _ms(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.0f}ms" if value < 10_000 else f"{value / 1000:.1f}s"


def row_cells(record: dict[str, Any]) -> tuple[str, str, str]:
    """(before status, status, after status) texts of one row."""
    ts = inert(record.get("ts") or "")
    when = ts[11:23] if len(ts) >= 23 else ts
    model = inert(record.get("model") or "-")
    if len(model) > 25:
        model = model[:24] + "…"
    provider = inert(record.get("provider", ""))
    before = f"{when:<12} {provider:<10.10} {model:<25} "
    status = f"{inert(record.get('status', '')):<4.4}"
    flags = ("⇣" if record.get("stream") else " ") + ("!" if record.get("error") else " ")
    after = (
        f" {human_count(int(record.get('tokens_in') or 0)):>7}"
        f" {human_count(int(record.get('tokens_out') or 0)):>7}"
        f" {cost_cell(record):>8}"
        f" {_ms(record.get('ttfb_ms')):>8} {_ms(record.get('duration_ms')):>9} {flags}"
    )
    return before, status, after


def cost_cell(record: dict[str, Any]) -> str:
    """A call's cost in the table: `$0.0031`, or `?` when it has no price
    (an unknown model, a record older than costs, an unfinished call)."""
    cost = record_cost(record)
    return "?" if cost is None else format_usd(cost)


@dataclass
class FilterState:
    """The active filter as the follower thread sees it; replaced, never
    mutated by the UI, so a thread holding an old one is simply ignored."""

    flt: TrafficFilter
    generation: int
    covered: int
    token: int
    totals: Totals = field(default_factory=Totals)


# The unfiltered view shows every line of the file: a call's start line, once
# its end is written, reads as this (filters and totals count the call once).
STARTED_ONLY = "· start of a call; its record is its end line, further on"


class TrafficView(ScrollView, can_focus=True):
    """The calls of one traffic.jsonl, newest last, following by default."""

    COMPONENT_CLASSES = {
        "traffic--cursor",
        "traffic--ok",
        "traffic--warn",
        "traffic--bad",
        "traffic--muted",
    }

    DEFAULT_CSS = """
    TrafficView { height: 1fr; background: $surface; overflow-x: hidden; }
    TrafficView > .traffic--cursor { background: $accent 40%; text-style: bold; }
    TrafficView:focus > .traffic--cursor { background: $accent 70%; }
    TrafficView > .traffic--ok { color: $success; }
    TrafficView > .traffic--warn { color: $warning; }
    TrafficView > .traffic--bad { color: $error; text-style: bold; }
    TrafficView > .traffic--muted { color: $text-muted; }
    """

    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False, id="traffic.up", tooltip="Previous call"),
        Binding("down,j", "move(1)", "Down", show=False, id="traffic.down", tooltip="Next call"),
        Binding("pageup", "page(-1)", show=False, id="traffic.pageup", tooltip="Page up"),
        Binding("pagedown", "page(1)", show=False, id="traffic.pagedown", tooltip="Page down"),
        Binding("home,g", "first", "Oldest", show=False, id="traffic.first", tooltip="Oldest"),
        Binding(
            "end,G", "follow", "Follow", id="traffic.follow", tooltip="Newest, and follow new calls"
        ),
    ]

    cursor: reactive[int] = reactive(-1, init=False)
    following: reactive[bool] = reactive(True, init=False)

    @dataclass
    class Highlighted(Message):
        """The cursor moved onto a row; `record` is None for a malformed line
        and for the start line of a finished call (`started_only`)."""

        view: TrafficView
        line: int
        record: dict[str, Any] | None
        started_only: bool = False

    @dataclass
    class Scanned(Message):
        """Index progress (0..1), `done` at the end."""

        fraction: float
        done: bool = False

    @dataclass
    class LinesRead(Message):
        generation: int

    @dataclass
    class Followed(Message):
        """The follower saw appends (`reset`: truncation or rotation)."""

        reset: bool
        token: int
        matches: list[int]
        covered: int
        totals: Totals

    @dataclass
    class TotalsChanged(Message):
        totals: Totals

    def __init__(self, log: TrafficLog, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tlog = log
        self.rows: array | None = None  # filtered line indices, None = all lines
        self.state = FilterState(TrafficFilter(), log.generation, 0, 0)
        self._known = 0
        self._rev_known = 0
        self._requests: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        self._requested: set[tuple[int, int]] = set()
        self._stop = threading.Event()
        self.pending = 0
        self.counting = False

    # --- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        """Open, index and follow the file (once: the first time it is shown)."""
        if self._started:
            return
        self._started = True
        self._scan()
        self._reader()

    _started = False

    def on_unmount(self) -> None:
        self._stop.set()
        self._requests.put(None)

    @work(thread=True, exclusive=True, group="traffic-scan", exit_on_error=False)
    def _scan(self) -> None:
        log = self.tlog
        log.open()
        log.scan(progress=lambda f: self.post_message(self.Scanned(f)), cancelled=self._stop.is_set)
        self.post_message(self.Scanned(1.0, done=True))

    @on(Scanned)
    def _scanned(self, message: Scanned) -> None:
        message.stop()
        self._grow()
        if message.done:
            if not self._following_started:
                self._following_started = True
                self.state = FilterState(self.state.flt, self.tlog.generation, len(self.tlog), 1)
                self._follow()
            self._count_totals()

    _following_started = False

    def _count_totals(self) -> None:
        """Count the totals in a thread; `counting` is set here, in the UI
        thread, so nobody sees a finished count before it started."""
        if self.state.flt.empty:
            self.counting = True
            self._count_totals_thread()

    @work(thread=True, exclusive=True, group="traffic-totals", exit_on_error=False)
    def _count_totals_thread(self) -> None:
        """Totals of the lines before the follower's start, when no filter is
        set (the follower counts the rest)."""
        state = self.state
        if not state.flt.empty:
            return
        token = state.token
        totals = self.tlog.totals(
            cancelled=lambda: self._stop.is_set() or self.state.token != token,
            end_line=state.covered,
        )
        self.post_message(self.Counted(state.token, totals))

    @dataclass
    class Counted(Message):
        token: int
        totals: Totals

    @on(Counted)
    def _counted(self, message: Counted) -> None:
        message.stop()
        if message.token == self.state.token:
            self.counting = False
            self.state.totals.add(message.totals)
            self.post_message(self.TotalsChanged(self.state.totals))

    # --- row source ------------------------------------------------------------
    @property
    def row_count(self) -> int:
        """Rows as of the last `_grow` (stable between two messages, so the
        screen and the cursor agree while threads find more lines)."""
        return self._known

    def line_of(self, row: int) -> int | None:
        if row < 0 or row >= self._known:
            return None
        if self.rows is not None:
            return self.rows[row] if row < len(self.rows) else None
        # Lines found at the front since the last _grow shift every number.
        line = row + self.tlog.scanned_lines - self._rev_known
        return line if line < len(self.tlog) else None

    def _grow(self) -> None:
        """Take in new lines: keep the view where the operator left it."""
        prepended = 0
        if self.rows is None:
            prepended = self.tlog.scanned_lines - self._rev_known
            self._rev_known += prepended
        count = len(self.rows) if self.rows is not None else len(self.tlog)
        self._known = count
        self.virtual_size = Size(max(self.size.width, 1), count)
        if self.following:
            self._to_end()
            self.call_after_refresh(self._to_end_if_following)  # the new size laid out
        elif prepended > 0:
            # Older lines were found at the front: shift down with them.
            self.cursor = self.cursor + prepended
            self.scroll_to(y=self.scroll_y + prepended, animate=False)
        self.refresh()

    def _to_end_if_following(self) -> None:
        """`_to_end`, unless the operator moved the cursor meanwhile (a key
        read between the new lines and the refresh must not be undone)."""
        if self.following:
            self._to_end()

    def _to_end(self) -> None:
        count = self.row_count
        self.set_reactive(TrafficView.cursor, count - 1)
        self.scroll_to(y=max(count - self.scrollable_content_region.height, 0), animate=False)
        self._announce()

    # --- reading in a thread -----------------------------------------------------
    @work(thread=True, exclusive=True, group="traffic-reader", exit_on_error=False)
    def _reader(self) -> None:
        log = self.tlog
        while not self._stop.is_set():
            span = self._requests.get()
            if span is None:
                return
            log.record_at(span)
            while True:  # drain, then tell the UI once
                try:
                    more = self._requests.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    return
                log.record_at(more)
            self.post_message(self.LinesRead(log.generation))

    @on(LinesRead)
    def _lines_read(self, message: LinesRead) -> None:
        message.stop()
        self._requested.clear()
        self.refresh()
        self._announce()

    # --- following in a thread ---------------------------------------------------
    @work(thread=True, exclusive=True, group="traffic-follow", exit_on_error=False)
    def _follow(self) -> None:
        log = self.tlog
        while not self._stop.is_set():
            change = log.poll()
            state = self.state
            if change.reset:
                self.post_message(self.Followed(True, state.token, [], 0, Totals()))
                continue
            end = len(log)
            if state.generation == log.generation and state.covered < end:
                matches: list[int] = []
                totals = Totals()
                for i in range(state.covered, end):
                    raw = log.raw(i)
                    if raw is not None and state.flt.matches_line(raw):
                        matches.append(i)
                        totals.add_line(raw)
                state.covered = end
                self.post_message(self.Followed(False, state.token, matches, end, totals))
            elif not change:
                self._stop.wait(0.05)

    @on(Followed)
    def _followed(self, message: Followed) -> None:
        message.stop()
        if message.reset:
            self._requested.clear()
            self.rows = None if self.state.flt.empty else array("q")
            self.state = FilterState(
                self.state.flt,
                self.tlog.generation,
                0 if self.rows is not None else len(self.tlog),
                0,
            )
            self.notify("traffic.jsonl was truncated or rotated: reading it again")
            self._known = 0
            self._rev_known = 0
            if not self.state.flt.empty:
                self.post_message(self.Refilter())
            else:
                self._count_totals()
            self._grow()
            return
        if message.token != self.state.token:
            return
        if self.rows is not None:
            self.rows.extend(message.matches)
        self.state.totals.add(message.totals)
        self.post_message(self.TotalsChanged(self.state.totals))
        if not self.following:
            self.pending += len(message.matches)
        self._grow()

    class Refilter(Message):
        """The log was reset while a filter was set: the tab runs it again."""

    def pause_counting(self) -> None:
        """Stop the whole-file count (a filter is about to scan instead)."""
        self.state = FilterState(
            self.state.flt, self.state.generation, self.state.covered, self.state.token + 1
        )
        self.counting = False

    def set_filter_result(
        self, flt: TrafficFilter, lines: array | None, covered: int, totals: Totals
    ) -> None:
        """Show a filter's result (None: all lines) and follow from `covered`."""
        self.rows = lines
        self.state = FilterState(flt, self.tlog.generation, covered, self.state.token + 1, totals)
        self._known = 0
        self.following = True
        self.pending = 0
        self._grow()
        self.post_message(self.TotalsChanged(totals))
        if flt.empty:
            self._count_totals()

    # --- rendering -----------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        row = int(self.scroll_y) + y
        base = self.rich_style
        line = self.line_of(row) if row < self.row_count else None
        if line is None:
            if row == 0 and not self.row_count and not self.state.flt.empty:
                note = f" No calls match «{inert(str(self.state.flt))}»"[:width]
                muted = self.get_component_rich_style("traffic--muted")
                return Strip([Segment(note.ljust(width), base + muted)], width)
            return Strip([Segment(" " * width, base)], width)
        cursor = row == self.cursor
        style = base + self.get_component_rich_style("traffic--cursor") if cursor else base
        record = self.tlog.cached(line)
        if record is MISS:
            # Asked by byte span, not line number: numbers shift while the
            # index grows towards the start of the file.
            span = self.tlog.span(line)
            key = (self.tlog.generation, span[0] if span else -1)
            if span is not None and key not in self._requested:
                self._requested.add(key)
                self._requests.put(span)
            return Strip([Segment(" " * width, style)], width)
        if record is None:
            muted = style + self.get_component_rich_style("traffic--muted")
            text = (
                STARTED_ONLY
                if self.tlog.known_hidden(line)
                else "⚠ malformed or torn line, skipped"
            )
            return Strip([Segment(text.ljust(width)[:width], muted)], width)
        assert isinstance(record, dict)
        before, status, after = row_cells(record)
        # The gap after the status ends its segment rather than starting the
        # next one: SVG renderers drop a text run's leading spaces ("2001.2k").
        gap = len(after) - len(after.lstrip(" "))
        status, after = status + after[:gap], after[gap:]
        tone = self.get_component_rich_style(f"traffic--{status_tone(record.get('status'))}")
        segments = [
            Segment(before, style),
            Segment(status, style + Style(color=tone.color, bold=tone.bold)),
            Segment(after, style),
        ]
        used = len(before) + len(status) + len(after)
        if used < width:
            segments.append(Segment(" " * (width - used), style))
        return Strip(segments).crop(0, width)

    # --- cursor ----------------------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        self.refresh()
        self._announce()

    def _announce(self) -> None:
        line = self.line_of(self.cursor)
        if line is None:
            return
        record = self.tlog.cached(line)
        if record is MISS:
            return
        started_only = record is None and self.tlog.known_hidden(line)
        self.post_message(self.Highlighted(self, line, record, started_only))  # type: ignore[arg-type]  # MISS returned above

    def _set_cursor(self, row: int) -> None:
        count = self.row_count
        if not count:
            return
        row = max(0, min(count - 1, row))
        self.following = row == count - 1
        if self.following:
            self.pending = 0
        self.cursor = row
        height = self.scrollable_content_region.height
        if row < self.scroll_y:
            self.scroll_to(y=row, animate=False)
        elif row >= self.scroll_y + height:
            self.scroll_to(y=row - height + 1, animate=False)

    def action_move(self, delta: int) -> None:
        self._set_cursor(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self._set_cursor(
            self.cursor + direction * max(self.scrollable_content_region.height - 1, 1)
        )

    def action_first(self) -> None:
        self._set_cursor(0)

    def action_follow(self) -> None:
        self.following = True
        self.pending = 0
        self._to_end()
        self.refresh()

    def on_click(self, event: Any) -> None:
        self._set_cursor(int(self.scroll_y) + event.y)
