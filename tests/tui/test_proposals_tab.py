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
from textual.widgets import DataTable, Input, Static

from cftui import locks
from cftui.audit.events import read_events
from cftui.fleet import FleetHome
from cftui.gateway import config as gateway_config
from cftui.proposal_tree import seed
from cftui.tui.confirm import ConfirmModal
from cftui.tui.diff_view import DiffView
from cftui.tui.fleet_table import FleetTable
from cftui.tui.promote_dialogs import PromoteFromModal, PromoteModal
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


ASKING = (ConfirmModal, PromoteModal)


async def confirm(pilot, *, yes: bool = True) -> str:
    """Answer the confirmation (a promotion's, with its message as it is);
    the question it asked."""
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, ASKING))
    question = app.screen.question
    await wait_until(pilot, lambda: app.focused is not None and app.focused.id == "cancel")
    await pilot.press(*(("tab", "enter") if yes else ("enter",)))
    await wait_until(pilot, lambda: not isinstance(app.screen, ASKING))
    return question


def diff_shown(app) -> str:
    return app.screen.query_one(DiffView).plain


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
    from cftui.proposals.counts import BotCount, ProposalCounts

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
        await wait_until(pilot, lambda: isinstance(app.screen, PromoteModal))
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
        assert not isinstance(app.screen, ASKING)


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
        for key in ("p", "P", "d", "D", "F"):
            app._notifications.clear()
            await pilot.press(key)
            await wait_until(pilot, lambda: notified(app, "is locked by the kill switch"))
            assert not isinstance(app.screen, ASKING)
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
        await wait_until(pilot, lambda: isinstance(app.screen, PromoteModal))
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
    assert {b.key for b in keys} >= {"p", "P", "d", "D", "A", "V", "F", "space"}
    assert {action for _t, action, _h in PROPOSAL_COMMANDS} <= {
        b.action for b in ProposalsTab.BINDINGS
    }


async def test_markup_and_escapes_in_a_proposed_file_render_literally_when_coloured(
    make, fleet: FleetHome, tree: Path
) -> None:
    """The diff view colours a Python file in its language: the markup and
    the escape sequences in it stay text, in the lines and on the screen."""
    write(tree, "workspace/tools/evil.py", 'x = "[bold]big[/] \x1b[31mred\x1b[0m"\n[/]\n')
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=(160, 36)) as pilot:
        await opened(pilot, 1)
        view = app.screen.query_one(DiffView)
        await wait_until(pilot, lambda: view.coloured and "big" in view.plain)
        want = '+x = "[bold]big[/] \\x1b[31mred\\x1b[0m"'
        assert want in view.plain.split("\n") and "+[/]" in view.plain.split("\n")
        line = next(t for t in view.lines if t.plain == want)
        assert {s.style.color for s in line.spans if s.style and s.style.color}  # coloured
        at = line.plain.index("big")  # the markup made nothing bold
        assert not [s for s in line.spans if s.start <= at < s.end and s.style and s.style.bold]
        drawn = "".join(seg.text for y in range(view.size.height) for seg in view.render_line(y))
        assert "[bold]big[/]" in drawn and "\\x1b[31mred" in drawn and "\x1b" not in drawn


# --- the commit message, and promote --from ---------------------------------------------


async def test_promote_asks_for_its_commit_message_prefilled_and_editable(
    make, fleet: FleetHome, tree: Path
) -> None:
    write(tree, SKILL, "# Weather\n")
    code = fleet.code_dir("alpha")
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 1)
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, PromoteModal))
        modal = app.screen
        field = modal.query_one("#message", Input)
        assert field.value == f"Promote alpha's proposal: {SKILL}"  # the CLI's default
        await wait_until(pilot, lambda: app.focused is not None and app.focused.id == "cancel")
        await pilot.press("shift+tab")  # to the message
        assert app.focused is field
        field.value = ""
        await pilot.press("enter")  # on to Promote; then an empty message is refused
        assert app.focused is not None and app.focused.id == "confirm"
        await pilot.press("enter")
        assert app.screen is modal and "needs a commit message" in str(
            modal.query_one("#problem", Static).content
        )
        assert app.focused is field
        field.value = "Teach alpha the "
        await pilot.press("end", "s", "k", "y", "enter", "enter")
        await wait_until(pilot, lambda: notified(app, "alpha: promoted 1 file(s)"))
    assert git(code, "log", "-1", "--format=%s%n%an") == "Teach alpha the sky\nalpha"
    [event] = [e for e in read_events(fleet, "alpha") if e["action"] == "promote"]
    assert event["commit"] == git(code, "rev-parse", "HEAD")


@pytest.fixture
def reviewed(fleet: FleetHome, tmp_path: Path) -> tuple[Path, str]:
    """alpha's approved code pushed to a bare origin, and a branch `feature`
    a human reviewed there (one commit, a subject with an escape and markup
    in it: whoever opened the PR may be the agent)."""
    code = fleet.code_dir("alpha")
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(code, "remote", "add", "origin", str(bare))
    git(code, "push", "-q", "origin", "HEAD:main")
    work = tmp_path / "reviewer"
    git(tmp_path, "clone", "-q", str(bare), str(work))
    git(work, "checkout", "-q", "-b", "feature")
    write(work, "workspace/TOOLS.md", "reviewed tools\n")
    git(work, "add", "-A")
    git(
        work, "-c", "user.name=r", "-c", "user.email=r@x.invalid",
        "commit", "-qm", "tools [bold]reviewed[/] \x1b[2J",
    )  # fmt: skip
    git(work, "push", "-q", "origin", "feature")
    return work, git(work, "rev-parse", "HEAD")


async def test_promote_from_asks_the_branch_names_the_fast_forward_then_makes_it(
    make, fleet: FleetHome, tree: Path, runtime: MemoryRuntime, reviewed
) -> None:
    _work, target = reviewed
    code = fleet.code_dir("alpha")
    before = git(code, "rev-parse", "HEAD")
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 0)
        await pilot.press("F")
        await wait_until(pilot, lambda: isinstance(app.screen, PromoteFromModal))
        source = app.screen.query_one("#source", Input)
        assert source.value == "origin/main" and app.focused is source
        source.value = "origin/../main"
        await pilot.press("enter")  # refused as the CLI refuses it, in the dialog
        assert isinstance(app.screen, PromoteFromModal)
        assert "not a branch name" in str(app.screen.query_one("#problem", Static).content)
        source.value = "origin/feature"
        await pilot.press("enter")
        question = await confirm(pilot)
        assert f"{before[:12]} → {target[:12]}: 1 commit(s)" in question
        assert "tools [bold]reviewed[/] \\x1b[2J" in question and "\x1b" not in question
        assert "workspace/TOOLS.md" in question and "alpha's main to origin/feature" in question
        await wait_until(pilot, lambda: notified(app, "alpha: promoted origin/feature: 1 path(s)"))
    assert git(code, "rev-parse", "HEAD") == target
    assert (tree / "workspace/TOOLS.md").read_text() == "reviewed tools\n"  # proposals follow
    [event] = [e for e in read_events(fleet, "alpha") if e["action"] == "promote"]
    assert event["source"] == "origin/feature" and event["commit"] == target
    assert runtime.calls == [("rebuild", "alpha")]  # running: rolled out like the CLI


async def test_promote_from_a_branch_that_moved_after_the_preview_is_refused(
    make, fleet: FleetHome, tree: Path, reviewed
) -> None:
    work, _target = reviewed
    code = fleet.code_dir("alpha")
    before = git(code, "rev-parse", "HEAD")
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 0)
        await pilot.press("F")
        await wait_until(pilot, lambda: isinstance(app.screen, PromoteFromModal))
        app.screen.query_one("#source", Input).value = "origin/feature"
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        write(work, "workspace/SOUL.md", "pushed after the review\n")
        git(work, "-c", "user.name=r", "-c", "user.email=r@x.invalid", "commit", "-qam", "late")
        git(work, "push", "-q", "origin", "feature")
        await confirm(pilot)
        await wait_until(pilot, lambda: notified(app, "moved since it was reviewed"))
    assert git(code, "rev-parse", "HEAD") == before


# --- declared dependencies (the save directory) --------------------------------------

ALPHA_SAVE = "workspace/alpha_save"


def npm_manifest(**deps: str) -> str:
    return json.dumps({"name": "save", "private": True, "dependencies": deps})


@pytest.fixture
def approved_deps(fleet: FleetHome) -> Path:
    """alpha's approved code declares two packages; its proposals tree follows."""
    code = fleet.code_dir("alpha")
    write(code, f"{ALPHA_SAVE}/package.json", npm_manifest(**{"left-pad": "1.3.0", "gone": "^1"}))
    git(code, "add", f"{ALPHA_SAVE}/package.json")
    git(code, "commit", "-q", "-m", "deps")
    seed.seed(fleet, "alpha")
    return code


def deps_shown(app) -> str:
    from cftui.tui.dependency_changes_view import DependencyChangesView

    view = app.screen.query_one(DependencyChangesView)
    return str(view.render()) if view.display else ""


async def test_dependency_changes_show_each_package_and_promote_all_commits_them(
    make, fleet: FleetHome, approved_deps: Path, tree: Path
) -> None:
    code = approved_deps
    wanted = npm_manifest(**{"left-pad": "1.4.0", "@acme/new": "2.0.0"})
    write(code, f"{ALPHA_SAVE}/package.json", wanted)
    write(code, f"{ALPHA_SAVE}/package-lock.json", '{"lockfileVersion": 3}\n')
    write(tree, SKILL, "# Weather\n")
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 3)
        shown = deps_shown(app)
        assert f"Dependency changes in {ALPHA_SAVE}/package.json" in shown
        assert "+ @acme/new  added: 2.0.0" in shown
        assert "- gone  removed (approved ^1)" in shown
        assert "~ left-pad  approved 1.3.0 → proposed 1.4.0" in shown
        assert "package-lock.json differs from the approved one" in shown
        assert f"file:{ALPHA_SAVE}/package.json" in rows(app)
        await pilot.press("P")
        question = await confirm(pilot, yes=False)
        assert f"A {ALPHA_SAVE}/package-lock.json" in question
        assert f"M {ALPHA_SAVE}/package.json" in question and SKILL in question
        assert "2 of them from the save directory" in question
        assert git(code, "show", f"HEAD:{ALPHA_SAVE}/package.json") != wanted
        await pilot.press("P")
        await confirm(pilot)
        await wait_until(pilot, lambda: notified(app, "alpha: promoted 3 file(s)"))
        await wait_until(pilot, lambda: rows(app) == [] and deps_shown(app) == "")
    assert git(code, "show", f"HEAD:{ALPHA_SAVE}/package.json") == wanted
    assert git(code, "show", f"HEAD:{ALPHA_SAVE}/package-lock.json") == '{"lockfileVersion": 3}'


async def test_promote_selected_takes_only_the_save_dir_file_under_the_cursor(
    make, fleet: FleetHome, approved_deps: Path, tree: Path
) -> None:
    code = approved_deps
    wanted = npm_manifest(**{"left-pad": "1.4.0"})
    write(code, f"{ALPHA_SAVE}/package.json", wanted)
    write(tree, SKILL, "# Weather\n")
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        tab = await opened(pilot, 2)
        key = f"file:{ALPHA_SAVE}/package.json"
        await pilot.press(*["down"] * rows(app).index(key))
        await wait_until(pilot, lambda: tab._cursor_key() == key)
        await wait_until(pilot, lambda: "approved 1.3.0 → proposed 1.4.0" in diff_shown(app))
        await pilot.press("p")
        question = await confirm(pilot)
        assert f"M {ALPHA_SAVE}/package.json" in question and SKILL not in question
        await wait_until(pilot, lambda: rows(app) == [f"file:{SKILL}"])
    assert git(code, "show", f"HEAD:{ALPHA_SAVE}/package.json") == wanted
    assert not (code / SKILL).exists()


async def test_a_save_dir_file_rewritten_after_the_review_is_not_promoted(
    make, fleet: FleetHome, approved_deps: Path, tree: Path
) -> None:
    code = approved_deps
    write(code, f"{ALPHA_SAVE}/package.json", npm_manifest(**{"left-pad": "1.4.0"}))
    head = git(code, "rev-parse", "HEAD")
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 1)
        await pilot.press("P")
        await wait_until(pilot, lambda: isinstance(app.screen, PromoteModal))
        write(code, f"{ALPHA_SAVE}/package.json", npm_manifest(**{"evil": "9.9.9"}))
        await confirm(pilot)
        await wait_until(pilot, lambda: notified(app, "changed since it was reviewed"))
    assert git(code, "rev-parse", "HEAD") == head


async def test_markup_in_a_dependency_spec_or_name_renders_literally(
    make, fleet: FleetHome, approved_deps: Path, tree: Path
) -> None:
    code = approved_deps
    write(code, f"{ALPHA_SAVE}/package.json", npm_manifest(**{"left-pad": "[bold red]9[/]"}))
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 1)
        assert "approved 1.3.0 → proposed [bold red]9[/]" in deps_shown(app)
        # a name npm would refuse: the reason quotes it, literally, and blocks its promotion
        write(code, f"{ALPHA_SAVE}/package.json", npm_manifest(**{"[red]x": "1"}))
        await pilot.press("f5")
        await wait_until(pilot, lambda: "[red]x" in deps_shown(app))
        assert "is not an npm package name" in deps_shown(app)
        assert f"refused:{ALPHA_SAVE}/package.json" in rows(app)
        await pilot.press("P")
        await wait_until(pilot, lambda: notified(app, "proposes no file to promote"))
    assert git(code, "show", f"HEAD:{ALPHA_SAVE}/package.json") == npm_manifest(
        **{"left-pad": "1.3.0", "gone": "^1"}
    )


async def test_d_puts_a_save_dir_file_back_as_approved(
    make, fleet: FleetHome, approved_deps: Path, tree: Path
) -> None:
    code = approved_deps
    approved_text = git(code, "show", f"HEAD:{ALPHA_SAVE}/package.json")
    write(code, f"{ALPHA_SAVE}/package.json", npm_manifest(**{"left-pad": "1.4.0"}))
    app = make(open_bot="alpha", open_tab="proposals")
    async with app.run_test(size=SIZE) as pilot:
        await opened(pilot, 1)
        await pilot.press("d")
        question = await confirm(pilot)
        assert "save directory's files too" in question
        await wait_until(pilot, lambda: rows(app) == [] and deps_shown(app) == "")
    assert (code / f"{ALPHA_SAVE}/package.json").read_text() == approved_text
    events = [json.loads(ln) for ln in fleet.events_log.read_text().splitlines()]
    assert events[-1]["action"] == "reject"
    assert events[-1]["paths"] == [f"{ALPHA_SAVE}/package.json"]
