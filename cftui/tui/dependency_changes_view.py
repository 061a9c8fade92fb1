"""The dependency changes of the Proposals tab: how the save directory's
package.json and lockfile differ from the approved ones (what `cftui
proposals` prints under `dependencies`), one line a package.

The package names, version specs and reasons came from the agent: the
section is built from inert `Text`, never markup. It only shows; the files
themselves are rows of the tab's table, promoted or refused with the rest.
Hidden while the save directory says what the approved tree says.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from cftui.deps.declared import DepChange, DepProposal
from cftui.inert import inert

_SIGN = {"added": "+", "removed": "-", "changed": "~"}


def dependency_text(deps: DepProposal) -> Text:
    """The section's text: a heading, then each package as `cftui proposals`
    says it (added with its proposed version, removed with the approved one,
    changed with both), then the lockfile and any reason it cannot be read."""
    text = Text()
    text.append(f"Dependency changes in {inert(deps.path)}", style="bold")
    text.append(" (not installed until promoted)")
    if deps.note:
        text.append(f"\n  ! {inert(deps.note)}", style="italic")
    for change in deps.changes:
        text.append(f"\n  {_SIGN[change.status]} {inert(change.name)}  {_versions(change)}")
    if deps.lockfile_changed:
        text.append("\n  ~ package-lock.json differs from the approved one")
    return text


def _versions(change: DepChange) -> str:
    if change.status == "added":
        return f"added: {inert(change.proposed)}"
    if change.status == "removed":
        return f"removed (approved {inert(change.approved)})"
    return f"approved {inert(change.approved)} → proposed {inert(change.proposed)}"


class DependencyChangesView(Static):
    """The save directory's declared dependency changes, or nothing."""

    DEFAULT_CSS = """
    DependencyChangesView { height: auto; max-height: 12; padding: 0 1;
        border-top: solid $panel-lighten-2; }
    DependencyChangesView.-empty { display: none; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, classes="-empty")
        self.deps: DepProposal | None = None

    def show(self, deps: DepProposal | None) -> None:
        self.deps = deps
        self.set_class(deps is None, "-empty")
        self.update(Text() if deps is None else dependency_text(deps))
