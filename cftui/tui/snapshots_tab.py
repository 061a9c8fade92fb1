"""The snapshots tab: list, create, restore (asks first), rename, delete
(asks first), with progress."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, ProgressBar, Static

from cftui.errors import CftuiError
from cftui.humanize import human_bytes
from cftui.inert import inert
from cftui.progress import ProgressEvent
from cftui.tui.confirm import ConfirmModal
from cftui.tui.formatting import agent_text
from cftui.tui.prompt import PromptModal

if TYPE_CHECKING:
    from textual import getters

    from cftui.tui.app import ClawFactoryApp


class SnapshotsTab(Vertical):
    """A bot's encrypted snapshots, newest first."""

    if TYPE_CHECKING:  # Textual types self.app as App[object]
        app = getters.app(ClawFactoryApp)

    DEFAULT_CSS = """
    SnapshotsTab { height: 1fr; }
    SnapshotsTab #snapshots-status { height: auto; padding: 0 1; color: $text-muted; }
    SnapshotsTab DataTable { height: 1fr; }
    SnapshotsTab ProgressBar { display: none; padding: 0 1; }
    SnapshotsTab ProgressBar.-busy { display: block; }
    """

    BINDINGS = [
        Binding("n", "create", "New snapshot", id="snapshots.create", tooltip="Snapshot now"),
        Binding("R", "restore", "Restore", id="snapshots.restore", tooltip="Restore (asks first)"),
        Binding("e", "rename", "Rename", id="snapshots.rename", tooltip="Rename the label"),
        Binding("d,delete", "delete", "Delete", id="snapshots.delete", tooltip="Delete (asks)"),
        Binding("f5", "reload", "Reload", id="snapshots.reload", tooltip="List again"),
    ]

    class Progressed(Message):
        def __init__(self, event: ProgressEvent) -> None:
            super().__init__()
            self.event = event

    def __init__(self, bot: str) -> None:
        super().__init__()
        self.bot = bot
        self._started = False
        self.names: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="snapshots-status")
        yield ProgressBar(total=None, show_eta=False, id="snapshots-progress")
        table: DataTable[str] = DataTable(
            cursor_type="row", zebra_stripes=True, id="snapshots-table"
        )
        columns = (("Name", 50), ("Latest", 6), ("Label", 20), ("Created (UTC)", 20), ("Size", 10))
        for col, width in columns:
            table.add_column(col, width=width)
        yield table

    def activate(self) -> None:
        if not self._started:
            self._started = True
            self.action_reload()
        self.query_one(DataTable).focus()

    # --- list ------------------------------------------------------------
    def action_reload(self) -> None:
        self._list()

    @work(thread=True, exclusive=True, group="snapshots-list", exit_on_error=False)
    def _list(self) -> None:
        from cftui import snapshots  # in the worker: kept out of the app's start-up

        try:
            found = snapshots.list_snapshots(self.app.home, self.bot)
        except CftuiError as exc:
            self.app.call_from_thread(self._show, None, str(exc))
            return
        self.app.call_from_thread(self._show, found, "")

    def _show(self, found: list[Any] | None, note: str) -> None:
        table = self.query_one(DataTable)
        status = self.query_one("#snapshots-status", Static)
        table.clear()
        self.names = []
        if found is None:
            status.update(agent_text(note))
            return
        for info in found:
            created = info.created.strftime("%Y-%m-%d %H:%M:%S")
            latest = "◀" if info.latest else ""
            table.add_row(
                agent_text(info.name),
                latest,
                agent_text(info.label),
                created,
                human_bytes(info.size),
                key=info.name,
            )
            self.names.append(info.name)
        status.update(
            f"{len(found)} snapshot(s) · n new · R restore · e rename · d delete"
            if found
            else "No snapshots yet: press n to take one."
        )

    @property
    def selected(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return self.names[table.cursor_row] if table.cursor_row < len(self.names) else None

    # --- actions ------------------------------------------------------------
    def action_create(self) -> None:
        def labelled(label: str | None) -> None:
            if label is not None:
                self._run("create", label=label)

        self.app.push_screen(PromptModal(f"Snapshot {self.bot}: label", "manual"), labelled)

    def action_restore(self) -> None:
        name = self.selected
        if name is None:
            return
        question = (
            f"Restore {name} over {self.bot}'s current state?\n\n"
            "The gateway is stopped while it runs; the current state is kept as a "
            "safety snapshot first."
        )
        self.app.push_screen(
            ConfirmModal(question, "Restore"),
            lambda yes: self._run("restore", name=name) if yes else self._kept("restore", name),
        )

    def action_rename(self) -> None:
        name = self.selected
        if name is None:
            return

        def renamed(label: str | None) -> None:
            if label:
                self._run("rename", name=name, label=label)

        self.app.push_screen(PromptModal(f"New label for {name}", ""), renamed)

    def action_delete(self) -> None:
        name = self.selected
        if name is None:
            return
        self.app.push_screen(
            ConfirmModal(f"Delete snapshot {name}?\n\nThis cannot be undone.", "Delete"),
            lambda yes: self._run("delete", name=name) if yes else self._kept("delete", name),
        )

    def _kept(self, action: str, name: str) -> None:
        """Say that a question answered no changed nothing."""
        self.notify(
            inert(f"{self.bot}: {action} of {name} cancelled; nothing changed"), markup=False
        )

    def _run(self, action: str, **kw: str) -> None:
        bar = self.query_one(ProgressBar)
        bar.add_class("-busy")
        bar.update(total=None, progress=0)
        self.query_one("#snapshots-status", Static).update(f"{action}…")
        self.run_worker(self._operate(action, **kw), group="snapshots-op", exit_on_error=False)

    async def _operate(self, action: str, name: str = "", label: str = "") -> None:
        import asyncio

        from cftui import snapshots

        app = self.app
        config = app.configs[self.bot]

        def progress(event: ProgressEvent) -> None:
            self.post_message(self.Progressed(event))

        try:
            runtime = app.runtimes.for_bot(config)
        except CftuiError:
            runtime = None
        try:
            if action == "create":
                info = await snapshots.snapshot(
                    app.home, config, label or None, runtime=runtime, progress=progress
                )
                done = f"created {info.name}"
            elif action == "restore":
                result = await snapshots.restore(
                    app.home, config, name, runtime=runtime, progress=progress
                )
                done = f"restored {result.name}" + (
                    f" (previous state kept as {result.safety})" if result.safety else ""
                )
            elif action == "rename":
                new = await asyncio.to_thread(snapshots.rename, app.home, self.bot, name, label)
                done = f"renamed to {new}"
            else:
                await asyncio.to_thread(snapshots.delete, app.home, self.bot, name)
                done = f"deleted {name}"
        except CftuiError as exc:
            self._done(f"{action} failed: {exc}", error=True)
            return
        self._done(done)

    def _done(self, text: str, error: bool = False) -> None:
        self.query_one(ProgressBar).remove_class("-busy")
        self.notify(
            inert(f"{self.bot}: {text}"),
            severity="error" if error else "information",
            markup=False,
        )
        self._list()

    @on(Progressed)
    def _progressed(self, message: Progressed) -> None:
        ev = message.event
        bar = self.query_one(ProgressBar)
        bar.update(total=ev.total, progress=ev.done)
        self.query_one("#snapshots-status", Static).update(agent_text(f"{ev.task}: {ev.message}"))
