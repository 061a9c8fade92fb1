"""The proposals tab: what the bot proposes to change in its code and its
own config, reviewed here, then promoted or rejected (CONTRACTS §9).

Everything on it was written by the agent (paths, diffs, reasons that quote
them): it reaches the screen as inert `Text`. Scans and diffs run in thread
workers; promotions, rejections and drift settlements run as app workers,
so that leaving the screen never cancels one half-way. Each asks first,
naming exactly what changes, and a promotion commits only what the
operator saw: a file the agent rewrote since is refused by the domain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, ProgressBar, Static
from textual.worker import get_current_worker

from cftui import locks
from cftui.errors import CftuiError
from cftui.humanize import human_bytes
from cftui.inert import inert
from cftui.progress import ProgressEvent
from cftui.proposals.model import Change, Proposals, Refusal
from cftui.tui.confirm import ConfirmModal
from cftui.tui.dependency_changes_view import DependencyChangesView, dependency_text
from cftui.tui.diff_render import DiffStyles, has_syntax, message_lines, render_diff
from cftui.tui.diff_view import DiffView
from cftui.tui.egress_requests_view import EgressRequestsView
from cftui.tui.formatting import agent_text
from cftui.tui.promote_dialogs import PromoteFromModal, PromoteModal

if TYPE_CHECKING:
    from textual import getters

    from cftui.proposals.promote import FastForward, PromoteResult
    from cftui.proposals.save_deps import SaveChanges
    from cftui.tui.app import ClawFactoryApp

CONFIG_KEY = "config"
_MARK = {"added": "A", "changed": "M", "removed": "D"}
# How many paths a confirmation lists before it says "and N more".
LISTED = 10


def file_key(path: str) -> str:
    return f"file:{path}"


def refused_key(path: str) -> str:
    return f"refused:{path}"


def counts_word(c: Change) -> str:
    """`+3 -1`, as `cftui proposals` says it."""
    if c.binary:
        return "binary"
    if c.lines_added is None:
        return "large"
    return f"+{c.lines_added} -{c.lines_removed}"


def listing(changes: list[Change]) -> str:
    """The lines of a confirmation naming each file (inert: the agent named them)."""
    lines = [f"  {_MARK[c.status]} {inert(c.path)}  {counts_word(c)}" for c in changes[:LISTED]]
    if len(changes) > LISTED:
        lines.append(f"  … and {len(changes) - LISTED} more")
    return "\n".join(lines)


def _rolled_out(result: PromoteResult) -> str:
    """What followed a promotion, for its notification."""
    done = ""
    if result.rebuilt:
        done += "; gateway rebuilt and restarted"
    elif result.restarted:
        done += "; restarted"
    return done + "".join(f"; {note}" for note in result.notes)


class ProposalsTab(Vertical):
    """Files the bot proposes, the refused entries (dimmed), its config
    drift, and the diff of the row under the cursor."""

    if TYPE_CHECKING:  # Textual types self.app as App[object]
        app = getters.app(ClawFactoryApp)

    COMPONENT_CLASSES = {
        "proposals--added",
        "proposals--changed",
        "proposals--removed",
        "proposals--refused",
        "proposals--config",
    }

    DEFAULT_CSS = """
    ProposalsTab { height: 1fr; }
    ProposalsTab #proposals-status { height: auto; padding: 0 1; color: $text-muted; }
    ProposalsTab #proposals-status.-error { color: $error; text-style: bold; }
    ProposalsTab ProgressBar { display: none; padding: 0 1; }
    ProposalsTab ProgressBar.-busy { display: block; }
    ProposalsTab #proposals-body { height: 1fr; }
    ProposalsTab #proposals-table { width: 70; height: 1fr; }
    ProposalsTab DiffView { width: 1fr; }
    ProposalsTab > .proposals--added { color: $success; }
    ProposalsTab > .proposals--changed { color: $warning; }
    ProposalsTab > .proposals--removed { color: $error; }
    ProposalsTab > .proposals--refused { color: $text-muted; text-style: italic; }
    ProposalsTab > .proposals--config { color: $accent; }
    """

    BINDINGS = [
        Binding(
            "space",
            "mark",
            "Mark",
            show=False,
            id="proposals.mark",
            tooltip="Mark or unmark the row for promote/reject selected",
        ),
        Binding(
            "p",
            "promote_selected",
            "Promote sel.",
            id="proposals.promote_selected",
            tooltip="Promote the marked files (or the one under the cursor); asks first",
        ),
        Binding(
            "P",
            "promote_all",
            "Promote all",
            id="proposals.promote_all",
            tooltip="Promote every file proposed (refused entries stay); asks first",
        ),
        Binding(
            "d",
            "reject_selected",
            "Reject sel.",
            id="proposals.reject_selected",
            tooltip="Put the marked rows (or the one under the cursor) back to approved; asks",
        ),
        Binding(
            "D",
            "reject_all",
            "Reject all",
            id="proposals.reject_all",
            tooltip="Make the whole proposals tree the approved code again; asks first",
        ),
        Binding(
            "A",
            "accept_drift",
            "Accept config",
            show=False,
            id="proposals.accept_drift",
            tooltip="The gateway's changed openclaw.json becomes the approved one; asks first",
        ),
        Binding(
            "V",
            "revert_drift",
            "Revert config",
            show=False,
            id="proposals.revert_drift",
            tooltip="Write the approved openclaw.json back over the gateway's; asks first",
        ),
        Binding(
            "F",
            "promote_from",
            "Promote from…",
            show=False,
            id="proposals.promote_from",
            tooltip="Fast-forward the approved code to a REMOTE/BRANCH merged elsewhere; asks first",
        ),
        Binding("f5", "reload", "Reload", show=False, id="proposals.reload", tooltip="Scan again"),
    ]

    class Progressed(Message):
        def __init__(self, event: ProgressEvent) -> None:
            super().__init__()
            self.event = event

    def __init__(self, bot: str) -> None:
        super().__init__()
        self.bot = bot
        self.found: Proposals | None = None
        # The save directory's dependency files, promotable like the tree's.
        self.saved: SaveChanges | None = None
        self.marked: set[str] = set()
        self.busy = False
        self._started = False
        self._keys: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="proposals-status")
        yield ProgressBar(total=None, show_eta=False, id="proposals-progress")
        with Horizontal(id="proposals-body"):
            table: DataTable[Text | str] = DataTable(
                cursor_type="row", zebra_stripes=True, id="proposals-table"
            )
            for key, label, width in (
                ("mark", "", 1),
                ("status", "St", 2),
                ("path", "Path", 34),
                ("size", "Size", 8),
                ("lines", "Change", 13),
            ):
                table.add_column(label, key=key, width=width)
            yield table
            yield DiffView(id="proposals-diff")
        yield DependencyChangesView(id="proposals-deps")
        yield EgressRequestsView(self.bot, id="proposals-egress")

    def on_mount(self) -> None:
        self.app.fleet_signal.subscribe(self, self._fleet_changed)
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._restyle())

    def activate(self) -> None:
        if not self._started or self.bot in self.app.pending_proposals:
            self._started = True
            self.action_reload()
            self.query_one(EgressRequestsView).reload()
        self.query_one(DataTable).focus()

    def _fleet_changed(self, _data: object) -> None:
        """The app's periodic scan saw a different count: read them again."""
        if self.found is None or self.busy:
            return
        if self.app.proposal_counts.code_count(self.bot, self._count()) != self._count():
            self.action_reload()

    def _count(self) -> int | None:
        found = self.found
        return None if found is None or not found.seeded else found.count

    # --- scan ---------------------------------------------------------------
    def action_reload(self) -> None:
        self._scan()

    @work(thread=True, exclusive=True, group="proposals-scan", exit_on_error=False)
    def _scan(self) -> None:
        from cftui.proposals import save_deps
        from cftui.proposals.scan import scan

        try:
            found = scan(self.app.home, self.bot)
            saved = save_deps.changes(self.app.home.code_dir(self.bot), found)
        except CftuiError as exc:
            self.app.call_from_thread(self._status, str(exc), True)
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, found, saved)

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#proposals-status", Static)
        status.update(agent_text(text, multiline=True))
        status.set_class(error, "-error")

    def _show(self, found: Proposals, saved: SaveChanges) -> None:
        self.found = found
        self.saved = saved
        self.query_one(DependencyChangesView).show(found.dependencies)
        self._fill(found)
        self._status(self._summary(found))
        self.app.proposals_seen(self.bot, self._count())
        self._show_diff(self._cursor_key())
        action = self.app.pending_proposals.pop(self.bot, None)
        if action is not None:
            getattr(self, f"action_{action}")()

    def _restyle(self) -> None:
        """The styles are the theme's: drawn again after it changes."""
        if self.found is not None:
            self._fill(self.found)
            self._show_diff(self._cursor_key())

    def _fill(self, found: Proposals) -> None:
        """The table made to show `found`, the cursor kept on its row."""
        table = self.query_one(DataTable)
        here = self._cursor_key()
        rows = self._rows(found)
        self._keys = [key for key, _ in rows]
        self.marked &= set(self._keys)
        with self.app.batch_update():
            table.clear()
            for key, cells in rows:
                table.add_row(*cells, key=key)
        if here in self._keys:
            table.move_cursor(row=self._keys.index(here))

    def _style(self, tone: str) -> str:
        return str(self.get_component_rich_style(f"proposals--{tone}"))

    def _save_changes(self) -> list[Change]:
        return self.saved.changes if self.saved is not None else []

    def _save_refused(self) -> list[Refusal]:
        """The save directory's refusals not already a row of the tree's."""
        found, saved = self.found, self.saved
        if saved is None:
            return []
        tree = {r.path for r in found.refused} if found is not None else set()
        return [r for r in saved.refused if r.path not in tree]

    def _change(self, path: str) -> Change | None:
        """A proposed file: the tree's, or the save directory's."""
        found = self.found
        hit = found.change(path) if found is not None else None
        return hit or next((c for c in self._save_changes() if c.path == path), None)

    def _refusal(self, path: str) -> Refusal | None:
        found = self.found
        hit = found.refusal(path) if found is not None else None
        return hit or next((r for r in self._save_refused() if r.path == path), None)

    def _rows(self, found: Proposals) -> list[tuple[str, list[Text | str]]]:
        rows: list[tuple[str, list[Text | str]]] = []
        for c in found.changes + self._save_changes():
            key = file_key(c.path)
            tone = self._style(c.status)
            size = human_bytes(c.size) if c.size is not None else ""
            rows.append(
                (
                    key,
                    [
                        "●" if key in self.marked else "",
                        Text(_MARK[c.status] + ("x" if c.executable else ""), style=tone),
                        agent_text(c.path),
                        size,
                        Text(counts_word(c), style=tone),
                    ],
                )
            )
        dim = self._style("refused")
        for r in found.refused + self._save_refused():
            key = refused_key(r.path)
            rows.append(
                (
                    key,
                    [
                        "●" if key in self.marked else "",
                        Text("!", style=dim),
                        agent_text(r.path, dim),
                        "",
                        agent_text(f"refused: {r.reason}", dim),
                    ],
                )
            )
        if found.config_drift:
            tone = self._style("config")
            keys = len(found.config_drift)
            rows.append(
                (
                    CONFIG_KEY,
                    [
                        "",
                        Text("C", style=tone),
                        Text("openclaw.json (config drift)", style=tone),
                        "",
                        Text(f"{keys} key{'s' if keys != 1 else ''}", style=tone),
                    ],
                )
            )
        return rows

    def _summary(self, found: Proposals) -> str:
        head = f"{self.bot}: against {found.branch}@{found.approved[:12]}"
        if not found.seeded:
            return f"{head}: no proposals tree yet (it is made at the bot's next start)"
        saved, saved_refused = self._save_changes(), self._save_refused()
        if not (found.changes or found.refused or found.config_drift or saved or saved_refused):
            return f"{head}: nothing proposed"
        parts = [head, f"{len(found.changes) + len(saved)} file(s) proposed"]
        if saved:
            parts.append(f"{len(saved)} dependency file(s) in the save directory")
        if found.refused or saved_refused:
            parts.append(f"{len(found.refused) + len(saved_refused)} refused")
        if found.config_drift:
            parts.append("openclaw.json drifted")
        if found.commits:
            parts.append(f"{len(found.commits)} agent commit(s)")
        keys = "space mark · p/P promote sel./all · d/D reject sel./all · F promote --from"
        if found.config_drift:
            keys += " · A accept / V revert config"
        return " · ".join(parts) + "\n" + keys + " · F5 rescan"

    # --- the diff of the row under the cursor ----------------------------------
    def _cursor_key(self) -> str | None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        return self._keys[row] if table.row_count and 0 <= row < len(self._keys) else None

    @on(DataTable.RowHighlighted, "#proposals-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key  # None when the cursor moves on an empty table
        self._show_diff(str(key.value) if key is not None and key.value else None)

    def _show_diff(self, key: str | None) -> None:
        view = self.query_one(DiffView)
        found = self.found
        if key is None or found is None:
            view.show_message(Text("Nothing proposed: nothing to review.", style="italic"))
            return
        if key.startswith("refused:"):
            refusal = self._refusal(key.removeprefix("refused:"))
            if refusal is not None:
                view.show_message(self._refusal_text(refusal))
            return
        path = key.removeprefix("file:")
        if found.dependencies is not None and any(c.path == path for c in self._save_changes()):
            view.show_message(self._save_text(path, found))
            return
        view.show_message(Text("reading…", style="italic"), settled=False)
        self._read_diff(key, view.diff_styles())

    def _refusal_text(self, r: Refusal) -> Text:
        text = Text()
        text.append(inert(r.path), style="bold")
        text.append(f"\n\nrefused: {inert(r.reason)}\n\n")
        text.append(
            "It can never be promoted and was not read. d rejects it "
            "(removes it from the proposals by name, never through it).",
            style="italic",
        )
        return text

    @staticmethod
    def _save_text(path: str, found: Proposals) -> Text:
        """A save-directory file's row: what it changes, package by package."""
        assert found.dependencies is not None
        text = Text()
        text.append(inert(path), style="bold")
        text.append("\n\nWritten by the gateway in its save directory; installed at the bot's ")
        text.append("next start only once promoted; d puts back the approved one.\n\n")
        text.append_text(dependency_text(found.dependencies))
        return text

    @work(thread=True, exclusive=True, group="proposals-diff", exit_on_error=False)
    def _read_diff(self, key: str, styles: DiffStyles) -> None:
        """Read the diff, show it tinted by line at once, then again with
        its code coloured in its language (lexing a long diff takes a while;
        the reader need not wait for it)."""
        from cftui.gateway import drift as config_drift
        from cftui.proposals.diff import diff

        home = self.app.home
        heading, hint = "", ""
        try:
            if key == CONFIG_KEY:
                text = config_drift.diff_text(home, self.bot)
                keys = self.found.config_drift if self.found else []
                heading = "openclaw.json changed by the gateway: " + ", ".join(keys[:20])
                if len(keys) > 20:
                    heading += f" and {len(keys) - 20} more"
                heading += "\n(credentials masked) · A accepts it · V reverts it"
            else:
                path = key.removeprefix("file:")
                text = diff(home, self.bot, path)
                hint = f"`cftui diff {self.bot} PATH` shows them all."
        except CftuiError as exc:
            text, heading = "", f"cannot show it: {exc}"
        worker = get_current_worker()
        if not text and heading:
            lines = message_lines(heading)
        else:
            lines = render_diff(text, styles, heading=heading, rest_hint=hint, syntax=False)
        if worker.is_cancelled:
            return
        more = bool(text) and key != CONFIG_KEY and has_syntax(text)
        self.app.call_from_thread(self._diff_read, key, lines, False, not more)
        if more:
            coloured = render_diff(text, styles, heading=heading, rest_hint=hint)
            if not worker.is_cancelled:
                self.app.call_from_thread(self._diff_read, key, coloured, True, True)

    def _diff_read(self, key: str, lines: list[Text], coloured: bool, settled: bool) -> None:
        if key != self._cursor_key():
            return  # the cursor moved on
        self.query_one(DiffView).show_lines(lines, coloured=coloured, settled=settled)

    # --- selection --------------------------------------------------------------
    def action_mark(self) -> None:
        key = self._cursor_key()
        if key is None or key == CONFIG_KEY:
            return
        self.marked ^= {key}
        table = self.query_one(DataTable)
        table.update_cell(key, "mark", "●" if key in self.marked else "")
        table.action_cursor_down()

    def _selected(self) -> list[str]:
        """The marked rows in table order, else the one under the cursor."""
        if self.marked:
            return [k for k in self._keys if k in self.marked]
        key = self._cursor_key()
        return [key] if key else []

    def _picked(self, keys: list[str]) -> tuple[list[Change], list[Refusal]]:
        """The changes and refused entries the selected rows name."""
        changes = [self._change(k.removeprefix("file:")) for k in keys if k.startswith("file:")]
        refused = [
            self._refusal(k.removeprefix("refused:")) for k in keys if k.startswith("refused:")
        ]
        return [c for c in changes if c], [r for r in refused if r]

    def _nothing_selected(self, keys: list[str], what: str) -> None:
        if keys == [CONFIG_KEY]:
            self.app.notify("The config drift is settled with A (accept) or V (revert).")
        else:
            self.app.notify(f"{self.bot}: nothing selected to {what}")

    def _refused_while_locked(self, what: str) -> bool:
        if self.bot in self.app.locked:
            self.app.notify(locks.locked_message(self.bot, what), severity="error", markup=False)
            return True
        return False

    def _ask(self, question: str, label: str, then, cancelled: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                then()
            else:
                self.app.notify(f"{self.bot}: {cancelled} cancelled; nothing changed")

        self.app.push_screen(ConfirmModal(question, label), answered)

    # --- promote ------------------------------------------------------------------
    def action_promote_selected(self) -> None:
        found = self.found
        if found is None or self._refused_while_locked("promote"):
            return
        keys = self._selected()
        changes, refused = self._picked(keys)
        if refused:
            r = refused[0]
            self.app.notify(
                inert(f"{r.path} cannot be promoted: {r.reason}"), severity="error", markup=False
            )
            return
        if not changes:
            self._nothing_selected(keys, "promote")
            return
        self._confirm_promote(changes, everything=False)

    def action_promote_all(self) -> None:
        found = self.found
        if found is None or self._refused_while_locked("promote"):
            return
        everything = found.changes + self._save_changes()
        if not everything:
            self.app.notify(f"{self.bot} proposes no file to promote")
            return
        self._confirm_promote(everything, everything=True)

    def _confirm_promote(self, changes: list[Change], *, everything: bool) -> None:
        found = self.found
        assert found is not None
        question = (
            f"Promote {len(changes)} file(s) of {self.bot} into its approved code?\n\n"
            f"{listing(changes)}\n\n"
            f"Its state is snapshotted first, then one commit on {inert(found.branch)} "
            f"(author {self.bot}); a running gateway is rebuilt or restarted."
        )
        saved = {c.path for c in self._save_changes()}
        from_save = [c for c in changes if c.path in saved]
        if from_save:
            question += (
                f"\n{len(from_save)} of them from the save directory: the dependencies "
                "committed are installed at the bot's next start."
            )
        refused_count = len(found.refused) + len(self._save_refused())
        if everything and refused_count:
            question += f"\n{refused_count} refused entr(ies) stay in the proposals."
        if found.config_drift:
            question += "\nThe config drift is not part of this (A accepts it, V reverts it)."
        from cftui.proposals.promote import default_message

        paths = [c.path for c in changes]
        reviewed = {c.path: c.sha for c in changes}

        def answered(message: str | None) -> None:
            if message is None:
                self.app.notify(f"{self.bot}: promote cancelled; nothing changed")
            else:
                self._start("promote", paths, reviewed, message=message)

        self.app.push_screen(PromoteModal(question, default_message(self.bot, paths)), answered)

    # --- promote --from REMOTE/BRANCH -------------------------------------------------
    def action_promote_from(self) -> None:
        if self.busy or self._refused_while_locked("promote"):
            return
        branch = self.found.branch if self.found is not None else "main"
        default = f"origin/{branch}" if not branch.startswith("(") else "origin/main"

        def answered(spec: str | None) -> None:
            if spec is None:
                self.app.notify(f"{self.bot}: promote --from cancelled; nothing changed")
                return
            self._status(f"fetching {spec}…")
            self._preview_from(spec)

        self.app.push_screen(PromoteFromModal(self.bot, branch, default), answered)

    @work(thread=True, exclusive=True, group="proposals-preview", exit_on_error=False)
    def _preview_from(self, spec: str) -> None:
        from cftui.proposals.promote import preview_from

        try:
            ff = preview_from(self.app.home, self.bot, spec)
        except CftuiError as exc:
            self.app.call_from_thread(self._preview_failed, str(exc))
            return
        self.app.call_from_thread(self._confirm_from, ff)

    def _preview_failed(self, why: str) -> None:
        self.app.notify(inert(f"{self.bot}: {why}"), severity="error", timeout=8, markup=False)
        if self.found is not None:
            self._status(self._summary(self.found))

    def _confirm_from(self, ff: FastForward) -> None:
        if self.found is not None:
            self._status(self._summary(self.found))
        commits = "\n".join(f"  {inert(c)}" for c in ff.commits)
        if ff.count > len(ff.commits):
            commits += f"\n  … and {ff.count - len(ff.commits)} more"
        paths = "\n".join(f"  {inert(p)}" for p in ff.paths[:LISTED])
        if len(ff.paths) > LISTED:
            paths += f"\n  … and {len(ff.paths) - LISTED} more"
        question = (
            f"Fast-forward {self.bot}'s {inert(ff.branch)} to {inert(ff.source)}?\n\n"
            f"{ff.before[:12]} → {ff.target[:12]}: {ff.count} commit(s)\n{commits}\n\n"
            f"{len(ff.paths)} path(s) change:\n{paths}\n\n"
            "Its state is snapshotted first; a running gateway is rebuilt or restarted. "
            "Paths the bot changed keep its version in the proposals."
        )

        def run() -> None:
            self._start("promote_from", source=ff.source, expected=ff.target)

        self._ask(question, "Fast-forward", run, "promote --from")

    # --- reject --------------------------------------------------------------------
    def action_reject_selected(self) -> None:
        found = self.found
        if found is None or self._refused_while_locked("reject"):
            return
        keys = self._selected()
        changes, refused = self._picked(keys)
        if not (changes or refused):
            self._nothing_selected(keys, "reject")
            return
        named = listing(changes)
        named += "".join(f"\n  ! {inert(r.path)}  refused" for r in refused[:LISTED])
        question = (
            f"Reject {len(changes) + len(refused)} proposal(s) of {self.bot}?\n\n{named.strip(chr(10))}\n\n"
            "Each is put back as the approved code has it; the bot's version is lost."
        )
        saved = {c.path for c in self._save_changes()} | {r.path for r in self._save_refused()}
        if any(c.path in saved for c in changes) or any(r.path in saved for r in refused):
            question += " (The save directory's files too, in the gateway's code/.)"
        paths = [c.path for c in changes] + [r.path for r in refused]
        self._ask(question, "Reject", lambda: self._start("reject", paths), "reject")

    def action_reject_all(self) -> None:
        found = self.found
        if found is None or self._refused_while_locked("reject"):
            return
        saved = len(self._save_changes()) + len(self._save_refused())
        if not found.seeded or not (found.changes or found.refused or saved):
            self.app.notify(f"{self.bot} proposes nothing to reject")
            return
        question = (
            f"Reject everything {self.bot} proposes?\n\n"
            f"The proposals tree is made again from the approved code: "
            f"{len(found.changes)} file(s) and {len(found.refused)} refused entr(ies) are "
            "discarded, with anything the bot wrote there since this list was read."
        )
        if saved:
            question += (
                f" The save directory's {saved} dependency file(s) are put back as approved."
            )
        if found.commits:
            question += f" Its {len(found.commits)} commit(s) there go too."
        if found.config_drift:
            question += "\nThe config drift is not touched (A accepts it, V reverts it)."
        self._ask(question, "Reject all", lambda: self._start("reject", []), "reject")

    # --- config drift ---------------------------------------------------------------
    def action_accept_drift(self) -> None:
        self._confirm_drift(accept=True)

    def action_revert_drift(self) -> None:
        self._confirm_drift(accept=False)

    def _confirm_drift(self, *, accept: bool) -> None:
        found = self.found
        what = "accept drift" if accept else "revert drift"
        if found is None or self._refused_while_locked(what):
            return
        if not found.config_drift:
            self.app.notify(f"{self.bot}: openclaw.json has not drifted: nothing to settle")
            return
        keys = ", ".join(inert(k) for k in found.config_drift[:LISTED])
        if len(found.config_drift) > LISTED:
            keys += f" and {len(found.config_drift) - LISTED} more"
        if keys == ".":
            keys = "the whole file (it is not a valid config)"
        if accept:
            question = (
                f"Accept the config drift of {self.bot}?\n\nChanged by the gateway: {keys}\n\n"
                "Its current openclaw.json becomes the approved version."
            )
        else:
            question = (
                f"Revert the config drift of {self.bot}?\n\nChanged by the gateway: {keys}\n\n"
                "The approved openclaw.json is written back over it; restart the bot to apply."
            )
        label = "Accept" if accept else "Revert"
        self._ask(question, label, lambda: self._start("drift", accept=accept), what)

    # --- operations (app workers) ---------------------------------------------------
    def _start(
        self,
        action: str,
        paths: list[str] | None = None,
        reviewed: dict[str, str | None] | None = None,
        *,
        accept: bool = False,
        message: str | None = None,
        source: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.busy = True
        bar = self.query_one(ProgressBar)
        bar.add_class("-busy")
        bar.update(total=None, progress=0)
        self._status(f"{action}…")
        self.app.run_worker(
            self._operate(action, paths or [], reviewed, accept, message, source, expected),
            group=f"proposals-op-{self.bot}",
            description=f"{action} {self.bot}",
            exit_on_error=False,
        )

    async def _operate(
        self,
        action: str,
        paths: list[str],
        reviewed: dict[str, str | None] | None,
        accept: bool,
        message: str | None = None,
        source: str | None = None,
        expected: str | None = None,
    ) -> None:
        from cftui.gateway import drift as config_drift
        from cftui.proposals import rollout
        from cftui.proposals.reject import reject

        app, bot = self.app, self.bot

        def progress(event: ProgressEvent) -> None:
            self.post_message(self.Progressed(event))

        try:
            if action == "promote":
                result = await rollout.promote_and_roll_out(
                    app.home,
                    app.configs[bot],
                    app.runtimes,
                    paths,
                    message,
                    progress=progress,
                    reviewed=reviewed,
                )
                done = f"promoted {len(result.paths)} file(s) as {result.commit[:12]}"
                done += _rolled_out(result)
            elif action == "promote_from":
                result = await rollout.promote_and_roll_out(
                    app.home,
                    app.configs[bot],
                    app.runtimes,
                    source=source,
                    expected=expected,
                    progress=progress,
                )
                done = (
                    f"promoted {source}: {len(result.paths)} path(s), now at {result.commit[:12]}"
                )
                done += _rolled_out(result)
            elif action == "reject":
                rejected = await reject(app.home, bot, paths)
                done = (
                    "every proposal rejected"
                    if rejected == ["*"]
                    else f"rejected {len(rejected)} path(s)"
                )
            else:
                keys = await config_drift.settle(app.home, bot, accept=accept)
                done = f"config drift {'accepted' if accept else 'reverted'}: " + (
                    ", ".join(keys[:LISTED]) or "whole file"
                )
                if not accept:
                    done += " (restart the bot to apply)"
        except CftuiError as exc:
            self._done(f"{action} failed: {exc}", error=True)
            return
        except Exception as exc:  # a worker must report, never die silently
            self._done(f"{action} failed: {type(exc).__name__}: {exc}", error=True)
            return
        self._done(done)

    def _done(self, text: str, error: bool = False) -> None:
        self.busy = False
        app = self.app
        app.notify(
            inert(f"{self.bot}: {text}"),
            severity="error" if error else "information",
            timeout=8 if error else 5,
            markup=False,
        )
        if self.is_mounted:
            self.query_one(ProgressBar).remove_class("-busy")
            self.action_reload()
        app.refresh_status()

    @on(Progressed)
    def _progressed(self, message: Progressed) -> None:
        ev = message.event
        self.query_one(ProgressBar).update(total=ev.total, progress=ev.done)
        self._status(f"{ev.task}: {ev.message}")
