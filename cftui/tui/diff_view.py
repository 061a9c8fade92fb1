"""A unified diff as the operator reads it: added, removed, hunk and header
lines in the theme's colours, the code in its language's (`diff_render`),
every line inert (the agent wrote both the paths in the headers and the
content), cut at a bound.

The lines are made in a thread (`diff_render` knows no widget) and the view
draws only the ones on screen (`render_line`, each line's strip cached), so
a 20,000-line diff costs a scroll no more than a short one."""

from __future__ import annotations

from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from cftui.tui.diff_render import TONES, DiffStyles, message_lines, render_diff


class DiffView(ScrollView, can_focus=False):
    """Scrolls both ways; lines are never wrapped, so columns stay columns."""

    COMPONENT_CLASSES = {f"diff--{tone}" for tone in TONES}

    DEFAULT_CSS = """
    DiffView { height: 1fr; border-left: solid $panel-lighten-2; padding: 0 1; }
    DiffView > .diff--added { color: $text-success; background: $success 12%; }
    DiffView > .diff--removed { color: $text-error; background: $error 12%; }
    DiffView > .diff--hunk { color: $accent; }
    DiffView > .diff--header { text-style: bold; }
    DiffView > .diff--note { color: $text-muted; text-style: italic; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._lines: list[Text] = []
        self.coloured = False  # the code in the lines shown has its language's colours
        self.settled = True  # what is shown is final (no pass of a worker still to come)
        self._strips: LRUCache[int, Strip] = LRUCache(1024)

    # --- what it shows --------------------------------------------------------
    @property
    def plain(self) -> str:
        """The text shown, without its styles (what tests and copies read)."""
        return "\n".join(line.plain for line in self._lines)

    @property
    def lines(self) -> list[Text]:
        return self._lines

    def diff_styles(self) -> DiffStyles:
        """The theme's styles for `diff_render`, taken here (on the app's
        thread) for a worker to use."""
        tones = {tone: self.get_component_rich_style(f"diff--{tone}") for tone in TONES}
        return DiffStyles(tones, dark=self.app.current_theme.dark)

    def show_message(self, text: Text | str, *, settled: bool = True) -> None:
        """A note in place of a diff (a refusal, an error, nothing selected;
        "reading…", not `settled`)."""
        self.show_lines(message_lines(text), settled=settled)

    def show_diff(self, diff: str, *, heading: str = "", rest_hint: str = "") -> None:
        """`diff` highlighted here and now (small diffs; a worker renders
        big ones with `diff_render` and calls `show_lines`)."""
        self.show_lines(render_diff(diff, self.diff_styles(), heading=heading, rest_hint=rest_hint))

    def show_lines(
        self, lines: list[Text], *, coloured: bool = False, settled: bool = True
    ) -> None:
        """Lines from `diff_render`; `coloured` when they are the lines
        already shown with their code coloured (the second pass): the
        scroll position is kept. `settled` is False while a worker has
        another pass to bring (what tests wait on)."""
        self._lines = lines
        self.coloured = coloured
        self.settled = settled
        self._strips.clear()
        width = max((line.cell_len for line in lines), default=0)
        self.virtual_size = Size(width, len(lines))
        if not coloured:
            self.scroll_home(animate=False)
        self.refresh()

    # --- drawing ---------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        if index >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        strip = self._strips.get(index)
        if strip is None:
            line = self._lines[index]
            segments = list(line.render(self.app.console))
            strip = Strip(segments, line.cell_len)
            self._strips[index] = strip
        base = self.rich_style
        return strip.crop_extend(scroll_x, scroll_x + width, base).apply_style(base)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()
