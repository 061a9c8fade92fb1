"""The CLI face: `cftui proposals|diff|promote|reject|drift`, with promote's
rebuild or restart through lifecycle on the in-memory runtime."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cftui.audit.events import read_events
from cftui.fleet import FleetHome
from tests.fakes import memory_runtime

from .conftest import git, write


@pytest.fixture
def runtime(home: FleetHome, bot: str, monkeypatch: pytest.MonkeyPatch):
    rt = memory_runtime.MemoryRuntime(home, running=[bot])
    monkeypatch.setattr("cftui.runtime.Runtimes", lambda h: memory_runtime.MemoryRuntimes(h, rt))
    return rt


def test_proposals_json_and_text(cli, home: FleetHome, bot: str, tree: Path) -> None:
    write(tree, "workspace/skills/w/SKILL.md", "# W\n\x1b]0;pwned\x07\n")
    os.symlink("/etc/passwd", tree / "workspace/passwd")
    res = cli("proposals", bot, "--json")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert [c["path"] for c in data["changes"]] == ["workspace/skills/w/SKILL.md"]
    assert data["changes"][0]["status"] == "added" and data["changes"][0]["lines_added"] == 2
    assert data["refused"][0]["path"] == "workspace/passwd"
    res = cli("proposals", bot)
    assert "A workspace/skills/w/SKILL.md" in res.out and "! workspace/passwd: refused" in res.out


def test_proposals_sizes_are_in_the_units_of_every_other_screen(cli, bot: str, tree: Path) -> None:
    """KB in the CLI, KiB in the TUI (issue #22): one unit, from cftui.humanize."""
    write(tree, "workspace/skills/w/SKILL.md", "x" * 3000 + "\n")
    res = cli("proposals", bot)
    assert res.code == 0, res.err
    assert "2.9 KiB" in res.out and "KB" not in res.out


def test_diff_prints_the_agents_bytes_inert(cli, bot: str, tree: Path) -> None:
    write(tree, "workspace/skills/w/SKILL.md", "# W\n\x1b]0;pwned\x07\n")
    res = cli("diff", bot, "workspace/skills")
    assert res.code == 0, res.err
    assert "+++ b/workspace/skills/w/SKILL.md" in res.out and "+# W" in res.out
    assert "\x1b" not in res.out and "\x07" not in res.out
    assert cli("diff", bot, "nope").code == 2


def test_promote_rebuilds_when_the_build_inputs_changed(
    cli, home: FleetHome, bot: str, tree: Path, runtime
) -> None:
    write(tree, "workspace/skills/w/SKILL.md", "# W\n")
    res = cli("promote", bot, "-m", "skill w")
    assert res.code == 0, res.err
    assert "promoted 1 file(s)" in res.out and "rebuilt" in res.out
    assert ("rebuild", bot) in runtime.calls
    assert git(home.code_dir(bot), "log", "-1", "--format=%s") == "skill w"
    actions = [e["action"] for e in read_events(home, bot)]
    assert actions[-3:] == ["snapshot", "promote", "rebuild"]


def test_promote_restarts_when_the_image_would_not_change(
    cli, home: FleetHome, bot: str, tree: Path, runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cftui.proposals.promote.build_inputs", lambda code: "same")
    write(tree, "workspace/memory/note.md", "n\n")
    res = cli("promote", bot)
    assert res.code == 0, res.err
    assert "restarted" in res.out
    assert ("down", bot) in runtime.calls and ("up", bot) in runtime.calls
    assert ("rebuild", bot) not in runtime.calls


def test_promote_of_a_stopped_bot_applies_at_its_next_start(
    cli, home: FleetHome, bot: str, tree: Path, runtime
) -> None:
    runtime.states.clear()
    write(tree, "workspace/skills/s.md", "s\n")
    res = cli("promote", bot)
    assert res.code == 0, res.err
    assert "next start" in res.out and runtime.calls == []


def test_promote_naming_a_refused_path_promotes_nothing(
    cli, home: FleetHome, bot: str, tree: Path, runtime
) -> None:
    os.symlink("/etc/passwd", tree / "workspace/passwd")
    write(tree, "workspace/skills/s.md", "s\n")
    head = git(home.code_dir(bot), "rev-parse", "HEAD")
    res = cli("promote", bot, "workspace/passwd", "workspace/skills/s.md")
    assert res.code == 1 and "symbolic link" in res.err and "nothing was promoted" in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert git(home.code_dir(bot), "rev-parse", "HEAD") == head


def test_promote_while_locked_is_one_line(
    cli, home: FleetHome, bot: str, tree: Path, runtime
) -> None:
    write(tree, "workspace/skills/s.md", "s\n")
    assert cli("kill", bot).code == 0
    res = cli("promote", bot)
    assert res.code == 1 and "locked by the kill switch" in res.err
    assert "Traceback" not in res.err


def test_reject_and_drift_commands(cli, home: FleetHome, bot: str, tree: Path) -> None:
    write(tree, "workspace/skills/s.md", "s\n")
    res = cli("reject", bot, "workspace/skills/s.md")
    assert res.code == 0 and "rejected workspace/skills/s.md" in res.out
    assert json.loads(cli("proposals", bot, "--json").out)["changes"] == []
    from cftui.gateway import config as gc

    gc.write_config(home, bot, {"a": 1}, reason="runtime wiring", actor="cftui")
    gc.config_path(home, bot).write_text('{"a": 2}')
    res = cli("drift", bot, "--json")
    assert json.loads(res.out)["changed"] == ["a"]
    assert "drifted: a" in cli("drift", bot).out
    assert cli("drift", bot, "--revert").code == 0
    assert gc.read_config(home, bot) == {"a": 1}
    assert "approved version" in cli("drift", bot).out


def test_promote_and_reject_json(cli, home: FleetHome, bot: str, tree: Path, runtime) -> None:
    write(tree, "workspace/skills/s.md", "s\n")
    write(tree, "workspace/skills/t.md", "t\n")
    res = cli("reject", bot, "workspace/skills/t.md", "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out) == {"bot": bot, "all": False, "rejected": ["workspace/skills/t.md"]}
    res = cli("promote", bot, "--json", "-m", "skill s")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["paths"] == ["workspace/skills/s.md"] and doc["refused"] == []
    assert doc["commit"] == git(home.code_dir(bot), "rev-parse", "HEAD") != doc["before"]
    assert doc["rebuilt"] is True and doc["snapshot"]
    write(tree, "workspace/skills/u.md", "u\n")
    res = cli("reject", bot, "--json")
    assert json.loads(res.out) == {"bot": bot, "all": True, "rejected": []}
