"""`cftui update`: fetch the upstream, snapshot first, fast-forward only,
refuse uncommitted work unless forced."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cftui import locks, snapshots
from cftui.audit.events import read_events
from cftui.botinit import init_bot
from cftui.errors import BotLocked, UsageError
from cftui.fleet import FleetHome
from cftui.update import UpdateError, update

from .conftest import fill_state

BOT = "upd"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """A gateway source with a Dockerfile, cloned by `cftui init --code`."""
    src = tmp_path / "upstream"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    git(src, "config", "user.email", "t@example.invalid")
    git(src, "config", "user.name", "t")
    (src / "Dockerfile").write_text("FROM scratch\n")
    git(src, "add", ".")
    git(src, "commit", "-q", "-m", "one")
    return src


@pytest.fixture
def bot(home: FleetHome, upstream: Path) -> str:
    init_bot(home, BOT, code=str(upstream))
    fill_state(home.state_dir(BOT))
    code = home.code_dir(BOT)
    git(code, "config", "user.email", "t@example.invalid")
    git(code, "config", "user.name", "t")
    return BOT


def new_upstream_commit(upstream: Path) -> str:
    (upstream / "CHANGELOG").write_text("two\n")
    git(upstream, "add", ".")
    git(upstream, "commit", "-q", "-m", "two")
    return git(upstream, "rev-parse", "HEAD")


async def test_update_fast_forwards_after_a_snapshot(
    home: FleetHome, bot: str, upstream: Path
) -> None:
    target = new_upstream_commit(upstream)
    result = await update(home, home.bot(bot), None)
    assert result.after == target and result.changed
    assert git(home.code_dir(bot), "rev-parse", "HEAD") == target
    assert result.snapshot and result.snapshot.startswith("pre-update--")
    assert [s.name for s in snapshots.list_snapshots(home, bot)] == [result.snapshot]
    assert any("not rebuilt" in n for n in result.notes)
    event = [e for e in read_events(home, bot) if e["action"] == "update"][-1]
    assert event["after"] == target


async def test_update_with_nothing_new_does_nothing(home: FleetHome, bot: str) -> None:
    result = await update(home, home.bot(bot), None)
    assert not result.changed and result.snapshot is None
    assert snapshots.list_snapshots(home, bot) == []


async def test_update_refuses_uncommitted_changes_unless_forced(
    home: FleetHome, bot: str, upstream: Path
) -> None:
    target = new_upstream_commit(upstream)
    (home.code_dir(bot) / "Dockerfile").write_text("FROM scratch\n# local edit\n")
    with pytest.raises(UsageError, match=r"uncommitted changes.*--force"):
        await update(home, home.bot(bot), None)
    assert snapshots.list_snapshots(home, bot) == []
    result = await update(home, home.bot(bot), None, force=True)
    assert result.after == target
    assert "local edit" in (home.code_dir(bot) / "Dockerfile").read_text()


async def test_update_refuses_a_diverged_history(home: FleetHome, bot: str, upstream: Path) -> None:
    new_upstream_commit(upstream)
    code = home.code_dir(bot)
    (code / "local.txt").write_text("mine")
    git(code, "add", ".")
    git(code, "commit", "-q", "-m", "local")
    head = git(code, "rev-parse", "HEAD")
    with pytest.raises(UpdateError, match="cannot be fast-forwarded"):
        await update(home, home.bot(bot), None)
    assert git(code, "rev-parse", "HEAD") == head


async def test_update_refuses_a_locked_bot(home: FleetHome, bot: str, upstream: Path) -> None:
    new_upstream_commit(upstream)
    locks.lock_bots(home, [bot])
    with pytest.raises(BotLocked):
        await update(home, home.bot(bot), None)


async def test_update_without_upstream_says_so(home: FleetHome) -> None:
    init_bot(home, "plain")
    with pytest.raises(UpdateError, match="no upstream"):
        await update(home, home.bot("plain"), None)


def test_cli_update_bad_input_is_one_line(home: FleetHome, bot: str, cli, upstream: Path) -> None:
    new_upstream_commit(upstream)
    (home.code_dir(bot) / "Dockerfile").write_text("changed")
    r = cli("update", bot)
    assert r.code == 2 and "--force" in r.err and len(r.err.strip().splitlines()) == 1
