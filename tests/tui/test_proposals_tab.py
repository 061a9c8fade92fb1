"""Pilot tests of the Proposals tab and the fleet table's proposals count,
on a real approved git repository and a real proposals tree (as
tests/proposals builds them): the runtime is the in-memory one."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import DataTable, Static

from cftui import locks
from cftui.audit.events import read_events
from cftui.fleet import FleetHome
from cftui.gateway import config as gateway_config
from cftui.proposal_tree import seed
from cftui.tui.confirm import ConfirmModal
from cftui.tui.diff_view import DiffView
from cftui.tui.fleet_table import FleetTable
from cftui.tui.proposals_tab import ProposalsTab
from tests.fakes.memory_runtime import MemoryRuntime
from tests.tui.tui_helpers import notified, wait_until

SIZE = (120, 36)
SKILL = "workspace/skills/weather/SKILL.md"


def write(root: Path, rel: str, text: str) -> Path:
    """The agent writes a file into its proposals tree."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def tree(fleet: FleetHome) -> Path:
    """alpha's proposals tree, seeded from its approved code."""
    seed.seed(fleet, "alpha")
    return fleet.proposals_dir("alpha")


def tab_of(app) -> ProposalsTab:
    return app.screen.query_one(ProposalsTab)


def rows(app) -> list[str]:
    return list(tab_of(app)._keys)


async def opened(pilot, count: int) -> ProposalsTab:
    """Wait for the tab to have scanned and show `count` rows."""
    app = pilot.app
    await wait_until(pilot, lambda: app.screen.query(ProposalsTab))
    tab = tab_of(app)
    await wait_until(pilot, lambda: tab.found is not None and len(tab._keys) == count)
    return tab


async def confirm(pilot, *, yes: bool = True) -> str:
    """Answer the confirmation; the question it asked."""
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
    question = app.screen.question
    await wait_until(pilot, lambda: app.focused is not None and app.focused.id == "cancel")
    await pilot.press(*(("tab", "enter") if yes else ("enter",)))
    await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmModal))
    return question


def diff_shown(app) -> str:
    content = app.screen.query_one(DiffView).query_one("#diff-text", Static).content
    return content.plain if isinstance(content, Text) else str(content)


# --- the fleet table's count ---------------------------------------------------


async def test_fleet_table_counts_proposals_and_notifies_when_they_go_up(
    make, fleet: FleetHome, tree: Path
) -> None:
    write(tree, SKILL, "# Weather\n")
    app = make(status_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(FleetTable)
        await wait_until(pilot, lambda: table.row_count == 2)
        await wait_until(pilot, lambda: str(table.get_cell("alpha", "proposals")) == "1")
        assert str(table.get_cell("beta", "proposals")) == "-"  # no proposals tree yet
        assert not notified(app, "proposes")  # what was there at start is not news
        write(tree, "workspace/skills/a.md", "a\n")
        write(tree, "workspace/SOUL.md", "a new soul\n")
        await wait_until(pilot, lambda: str(table.get_cell("alpha", "proposals")) == "3")
        await wait_until(pilot, lambda: notified(app, "alpha proposes 3 changes"))


def test_the_count_scans_a_bot_no_more_often_than_its_cost_allows(
    fleet: FleetHome, tree: Path
) -> None:
    from cftui.tui.proposal_counts import BotCount, ProposalCounts

    now = [100.0]

    def clock() -> float:
        now[0] += 0.5  # every reading: each scan "takes" half a second
        return now[0]

    counts = ProposalCounts(clock)
    assert counts.scan_due(fleet, ["alpha"]) == {"alpha": BotCount(0)}
    write(tree, SKILL, "x\n")
    assert counts.scan_due(fleet, ["alpha"]) == {}  # due again in 10 x 0.5 s
    now[0] += 5
    assert counts.scan_due(fleet, ["alpha"]) == {"alpha": BotCount(1)}


# --- review and promote ---------------------------------------------------------


async def test_promote_selected_through_the_modal_commits_it_and_updates_the_table(
    make, fleet: FleetHome, tree: Path, runtime: MemoryRuntime
) -> None:
    write(tree, SKILL, "# Weather\nsay the weather\n")
    write(tree, "workspace/skills/other.md", "not this one\n")
    code = fleet.code_dir("alpha")
    before = git(code, "rev-parse", "HEAD")
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        tab = await opened(pilot, 2)
        assert rows(app) == ["file:workspace/skills/other.md", f"file:{SKILL}"]
        await pilot.press("down")  # the weather skill
        await wait_until(pilot, lambda: "+say the weather" in diff_shown(app))
        await pilot.press("p")
        question = await confirm(pilot)
        assert f"A {SKILL}  +2 -0" in question and "other.md" not in question
        await wait_until(pilot, lambda: rows(app) == ["file:workspace/skills/other.md"])
        await wait_until(pilot, lambda: notified(app, "alpha: promoted 1 file(s)"))
        assert notified(app, "gateway rebuilt and restarted")
        assert tab.found is not None and tab.found.count == 1
    assert (code / SKILL).read_text() == "# Weather\nsay the weather\n"
    assert not (code / "workspace/skills/other.md").exists()
    assert git(code, "rev-parse", "HEAD~1") == before
    [event] = [e for e in read_events(fleet, "alpha") if e["action"] == "promote"]
    assert event["paths"] == [SKILL]
    # running, and the skill is one of the image's build inputs: rebuilt with it
    assert runtime.calls == [("rebuild", "alpha")]


async def test_promote_all_names_every_file_and_a_cancel_changes_nothing(
    make, fleet: FleetHome, tree: Path
) -> None:
    write(tree, "workspace/skills/a.md", "a\n")
    os.unlink(tree / "workspace/TOOLS.md")
    code = fleet.code_dir("alpha")
    head = git(code, "rev-parse", "HEAD")
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 2)
        await pilot.press("P")
        question = await confirm(pilot, yes=False)
        assert "A workspace/skills/a.md" in question and "D workspace/TOOLS.md" in question
        await wait_until(pilot, lambda: notified(app, "promote cancelled; nothing changed"))
        assert git(code, "rev-parse", "HEAD") == head
        await pilot.press("P")
        await confirm(pilot)
        await wait_until(pilot, lambda: rows(app) == [])
    assert (code / "workspace/skills/a.md").read_text() == "a\n"
    assert not (code / "workspace/TOOLS.md").exists()


async def test_a_file_rewritten_after_the_review_is_not_promoted(
    make, fleet: FleetHome, tree: Path
) -> None:
    write(tree, SKILL, "reviewed\n")
    head = git(fleet.code_dir("alpha"), "rev-parse", "HEAD")
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 1)
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        write(tree, SKILL, "swapped while the operator read the question\n")
        await confirm(pilot)
        await wait_until(pilot, lambda: notified(app, "changed since it was reviewed"))
    assert git(fleet.code_dir("alpha"), "rev-parse", "HEAD") == head


# --- reject ------------------------------------------------------------------------


async def test_reject_selected_and_reject_all_put_the_proposals_back(
    make, fleet: FleetHome, tree: Path
) -> None:
    soul = (tree / "workspace/SOUL.md").read_text()
    write(tree, "workspace/SOUL.md", "hijacked\n")
    write(tree, "workspace/skills/a.md", "a\n")
    write(tree, "workspace/skills/b.md", "b\n")
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 3)
        assert rows(app)[0] == "file:workspace/SOUL.md"
        await pilot.press("space", "space")  # mark SOUL.md and a.md
        await pilot.press("d")
        question = await confirm(pilot)
        assert "Reject 2 proposal(s)" in question
        assert "M workspace/SOUL.md" in question and "workspace/skills/a.md" in question
        assert "b.md" not in question
        await wait_until(pilot, lambda: rows(app) == ["file:workspace/skills/b.md"])
        assert (tree / "workspace/SOUL.md").read_text() == soul
        assert not (tree / "workspace/skills/a.md").exists()
        await pilot.press("D")
        question = await confirm(pilot)
        assert "1 file(s) and 0 refused" in question
        await wait_until(pilot, lambda: rows(app) == [])
        await wait_until(pilot, lambda: "nothing proposed" in str(_status(app)))
    assert not (tree / "workspace/skills/b.md").exists()
    assert [e["paths"] for e in read_events(fleet, "alpha") if e["action"] == "reject"] == [
        ["workspace/SOUL.md", "workspace/skills/a.md"],
        ["*"],
    ]


def _status(app) -> object:
    return app.screen.query_one("#proposals-status", Static).content


# --- hostile input -------------------------------------------------------------------


async def test_a_hostile_file_name_and_content_are_shown_inert(
    make, fleet: FleetHome, tree: Path
) -> None:
    name = "workspace/skills/evil\x1b]0;pwned\x07[bold red]x[/]\u202e.md"
    write(tree, name, "\x1b[2J[link=http://x]click[/link]\n")
    os.symlink("/etc/passwd", tree / "workspace/skills/passwd")
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 2)
        table = app.screen.query_one(DataTable)
        shown = table.get_cell(f"file:{name}", "path")
        assert isinstance(shown, Text)
        assert shown.plain == "workspace/skills/evil\\x1b]0;pwned\\x07[bold red]x[/]\\u202e.md"
        await wait_until(pilot, lambda: "click" in diff_shown(app))
        text = diff_shown(app)
        assert "\\x1b[2J[link=http://x]click[/link]" in text and "\x1b" not in text
        assert "\\x1b]0;pwned\\x07" in text  # the path in the diff's headers too
        await pilot.press("down")  # the refused link, dimmed, with its reason
        await wait_until(pilot, lambda: "links are never followed" in diff_shown(app))
        reason = table.get_cell("refused:workspace/skills/passwd", "lines")
        assert "refused: a symbolic link" in reason.plain and reason.style
        await pilot.press("p")
        await wait_until(pilot, lambda: notified(app, "cannot be promoted"))
        assert not isinstance(app.screen, ConfirmModal)


# --- locked ------------------------------------------------------------------------------


async def test_promote_and_reject_are_refused_while_the_bot_is_locked(
    make, fleet: FleetHome, tree: Path
) -> None:
    write(tree, SKILL, "x\n")
    locks.lock_bots(fleet, ["alpha"])
    head = git(fleet.code_dir("alpha"), "rev-parse", "HEAD")
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 1)  # reviewing is allowed while locked
        await wait_until(pilot, lambda: "alpha" in app.locked)
        for key in ("p", "P", "d", "D"):
            app._notifications.clear()
            await pilot.press(key)
            await wait_until(pilot, lambda: notified(app, "is locked by the kill switch"))
            assert not isinstance(app.screen, ConfirmModal)
        assert rows(app) == [f"file:{SKILL}"]
    assert git(fleet.code_dir("alpha"), "rev-parse", "HEAD") == head
    assert (tree / SKILL).read_text() == "x\n"


async def test_a_lock_that_lands_after_the_question_is_refused_by_the_domain(
    make, fleet: FleetHome, tree: Path
) -> None:
    write(tree, SKILL, "x\n")
    head = git(fleet.code_dir("alpha"), "rev-parse", "HEAD")
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 1)
        await pilot.press("P")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        locks.lock_bots(fleet, ["alpha"])  # a kill from another terminal
        await confirm(pilot)
        await wait_until(pilot, lambda: notified(app, "alpha is locked by the kill switch"))
    assert git(fleet.code_dir("alpha"), "rev-parse", "HEAD") == head


# --- config drift --------------------------------------------------------------------------


async def test_config_drift_shows_masked_and_is_accepted_or_reverted(
    make, fleet: FleetHome, tree: Path
) -> None:
    wired = {"models": {"providers": {"a": {"baseUrl": "http://llm", "apiKey": "tok-secret"}}}}
    gateway_config.write_config(fleet, "alpha", wired, reason="wiring", actor="cftui")
    drifted = {**wired, "tools": {"exec": {"enabled": True}}}
    gateway_config.config_path(fleet, "alpha").write_text(json.dumps(drifted))
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 1)
        assert rows(app) == ["config"]
        await wait_until(pilot, lambda: '"exec"' in diff_shown(app))
        assert "tok-secret" not in diff_shown(app) and "tools" in diff_shown(app)
        await pilot.press("V")
        question = await confirm(pilot)
        assert "Changed by the gateway: tools" in question
        await wait_until(pilot, lambda: rows(app) == [])
        assert gateway_config.read_config(fleet, "alpha") == wired
        gateway_config.config_path(fleet, "alpha").write_text(json.dumps(drifted))
        await pilot.press("f5")
        await wait_until(pilot, lambda: rows(app) == ["config"])
        await pilot.press("A")
        await confirm(pilot)
        await wait_until(pilot, lambda: rows(app) == [])
    from cftui.gateway import drift as config_drift

    assert config_drift.read_approved(fleet, "alpha") == drifted


# --- palette and help ---------------------------------------------------------------------


async def test_the_palette_opens_the_tab_and_asks_about_what_it_shows(
    make, fleet: FleetHome, tree: Path
) -> None:
    write(tree, SKILL, "x\n")
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.configs_loaded)
        app.proposals_command("alpha", "promote_all")
        question = await confirm(pilot, yes=False)
        assert f"A {SKILL}" in question
        assert tab_of(app).bot == "alpha"


def test_help_and_palette_list_the_proposals_keys(make) -> None:
    from cftui.tui.app import binding_groups
    from cftui.tui.commands import PROPOSAL_COMMANDS

    [keys] = [b for scope, b in binding_groups() if scope == "Proposals"]
    assert {b.key for b in keys} >= {"p", "P", "d", "D", "A", "V", "space"}
    assert {action for _t, action, _h in PROPOSAL_COMMANDS} <= {
        b.action for b in ProposalsTab.BINDINGS
    }
