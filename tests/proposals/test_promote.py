"""`cftui promote` and `reject`: a commit on the approved branch (the bot
the author, the operator the committer) after a snapshot, an event, the
build inputs compared; refused while locked; `--from` fast-forwards only."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from cftui import locks, snapshots
from cftui.audit.events import read_events
from cftui.botinit import init_bot
from cftui.errors import BotLocked, ProposalError
from cftui.fleet import FleetHome
from cftui.proposal_tree import seed
from cftui.proposals import promote, reject, scan

from .conftest import git, write


def run_promote(home: FleetHome, bot: str, paths=(), message=None):
    return asyncio.run(promote.promote(home, home.bot(bot), paths, message))


def test_promote_commits_as_the_bot_after_a_snapshot_and_records_it(
    home: FleetHome, bot: str, tree: Path
) -> None:
    code = home.code_dir(bot)
    before = git(code, "rev-parse", "HEAD")
    write(tree, "workspace/skills/weather/SKILL.md", "# Weather\n")
    os.unlink(tree / "workspace/TOOLS.md")
    result = run_promote(home, bot, message="weather skill")
    assert result.before == before and result.commit == git(code, "rev-parse", "HEAD")
    assert (
        git(code, "log", "-1", "--format=%an <%ae>|%s")
        == f"{bot} <{bot}@bots.clawfactory.invalid>|weather skill"
    )
    assert git(code, "log", "-1", "--format=%cn") != bot
    assert git(code, "status", "--porcelain") == ""
    assert (code / "workspace/skills/weather/SKILL.md").read_text() == "# Weather\n"
    assert not (code / "workspace/TOOLS.md").exists()
    [snap] = snapshots.list_snapshots(home, bot)
    assert snap.name == result.snapshot and snap.label == "pre-promote"
    [event] = [e for e in read_events(home, bot) if e["action"] == "promote"]
    assert event["commit"] == result.commit and event["before"] == before
    assert event["paths"] == ["workspace/TOOLS.md", "workspace/skills/weather/SKILL.md"]
    assert event["snapshot"] == result.snapshot
    assert scan.scan(home, bot).changes == []
    assert scan.scan(home, bot).commits == []


def test_promote_of_some_paths_leaves_the_others_proposed(
    home: FleetHome, bot: str, tree: Path
) -> None:
    write(tree, "workspace/skills/a/SKILL.md", "a\n")
    write(tree, "workspace/skills/b/SKILL.md", "b\n")
    result = run_promote(home, bot, ["workspace/skills/a"])
    assert result.paths == ["workspace/skills/a/SKILL.md"]
    assert [c.path for c in scan.scan(home, bot).changes] == ["workspace/skills/b/SKILL.md"]


def test_promote_commits_the_bytes_it_scanned(
    home: FleetHome, bot: str, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tree, "workspace/skills/s.md", "reviewed\n")
    real = promote.commit_files

    def agent_races(code, head, chosen, contents, bot_name, message):
        write(tree, "workspace/skills/s.md", "swapped after the scan\n")
        return real(code, head, chosen, contents, bot_name, message)

    monkeypatch.setattr(promote, "commit_files", agent_races)
    run_promote(home, bot)
    assert git(home.code_dir(bot), "show", "HEAD:workspace/skills/s.md") == "reviewed"
    [change] = scan.scan(home, bot).changes  # the swap is a proposal of its own
    assert change.path == "workspace/skills/s.md"


def test_promote_and_reject_are_refused_while_locked(home: FleetHome, bot: str, tree: Path) -> None:
    write(tree, "workspace/skills/s.md", "x\n")
    locks.lock_bots(home, [bot])
    head = git(home.code_dir(bot), "rev-parse", "HEAD")
    with pytest.raises(BotLocked):
        run_promote(home, bot)
    with pytest.raises(BotLocked):
        asyncio.run(reject.reject(home, bot))
    assert git(home.code_dir(bot), "rev-parse", "HEAD") == head
    assert snapshots.list_snapshots(home, bot) == []
    assert [c.path for c in scan.scan(home, bot).changes] == ["workspace/skills/s.md"]


def test_the_kill_switch_cancels_a_promotion_in_flight(
    home: FleetHome, bot: str, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tree, "workspace/skills/s.md", "x\n")
    head = git(home.code_dir(bot), "rev-parse", "HEAD")

    async def slow_snapshot(*args, **kwargs):
        locks.lock_bots(home, [bot])  # a kill from another process, mid-snapshot
        await asyncio.sleep(5)

    monkeypatch.setattr(promote.snapshots, "snapshot", slow_snapshot)
    with pytest.raises(BotLocked, match="promote cancelled"):
        run_promote(home, bot)
    assert git(home.code_dir(bot), "rev-parse", "HEAD") == head


def test_build_inputs_changed_only_when_the_image_would_rebuild(
    home: FleetHome, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src, "Dockerfile", "FROM scratch\n")
    write(src, ".dockerignore", "notes/\n")
    write(src, "notes/README.md", "notes\n")
    init_bot(home, "ign", code=str(src))
    seed.seed(home, "ign")
    tree = home.proposals_dir("ign")
    write(tree, "notes/today.md", "not in the image\n")
    assert run_promote(home, "ign").build_inputs_changed is False
    write(tree, "app.py", "print('in the image')\n")
    assert run_promote(home, "ign").build_inputs_changed is True


def test_a_named_path_that_is_not_proposed_is_refused(home: FleetHome, bot: str) -> None:
    from cftui.errors import UsageError

    with pytest.raises(UsageError, match="not a proposal"):
        run_promote(home, bot, ["workspace/SOUL.md"])
    with pytest.raises(ProposalError, match="nothing to promote"):
        run_promote(home, bot)


def test_reject_resets_one_path_or_all(home: FleetHome, bot: str, tree: Path) -> None:
    soul = (tree / "workspace/SOUL.md").read_bytes()
    write(tree, "workspace/SOUL.md", "hijacked\n")
    write(tree, "workspace/skills/s.md", "s\n")
    assert asyncio.run(reject.reject(home, bot, ["workspace/SOUL.md"])) == ["workspace/SOUL.md"]
    assert (tree / "workspace/SOUL.md").read_bytes() == soul
    assert [c.path for c in scan.scan(home, bot).changes] == ["workspace/skills/s.md"]
    assert asyncio.run(reject.reject(home, bot)) == ["*"]
    assert scan.scan(home, bot).changes == []
    assert [e["paths"] for e in read_events(home, bot) if e["action"] == "reject"] == [
        ["workspace/SOUL.md"],
        ["*"],
    ]


@pytest.fixture
def remote(home: FleetHome, bot: str, tmp_path: Path) -> Path:
    """A bare repository the approved code was pushed to: the GitHub side."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    code = home.code_dir(bot)
    git(code, "remote", "add", "origin", str(bare))
    git(code, "push", "-q", "origin", "main")
    return bare


def _reviewed_commit(tmp_path: Path, bare: Path, rel: str, text: str, *, base: str = "main") -> str:
    work = tmp_path / "reviewer"
    if not work.exists():
        git(tmp_path, "clone", "-q", str(bare), str(work))
    git(work, "checkout", "-q", "-B", "feature", f"origin/{base}")
    write(work, rel, text)
    git(work, "add", "-A")
    git(work, "commit", "-qm", f"reviewed {rel}")
    git(work, "push", "-q", "-f", "origin", "feature")
    return git(work, "rev-parse", "HEAD")


def test_promote_from_fast_forwards_and_the_proposals_follow(
    home: FleetHome, bot: str, tree: Path, remote: Path, tmp_path: Path
) -> None:
    write(tree, "workspace/SOUL.md", "the agent's soul\n")
    target = _reviewed_commit(tmp_path, remote, "workspace/TOOLS.md", "reviewed tools\n")
    result = asyncio.run(promote.promote_from(home, home.bot(bot), "origin/feature"))
    assert result.commit == target == git(home.code_dir(bot), "rev-parse", "HEAD")
    assert result.paths == ["workspace/TOOLS.md"] and result.source == "origin/feature"
    assert (tree / "workspace/TOOLS.md").read_text() == "reviewed tools\n"
    assert [c.path for c in scan.scan(home, bot).changes] == ["workspace/SOUL.md"]
    [event] = [e for e in read_events(home, bot) if e["action"] == "promote"]
    assert event["source"] == "origin/feature" and event["commit"] == target


def test_preview_from_names_what_would_be_fast_forwarded_and_changes_nothing(
    home: FleetHome, bot: str, remote: Path, tmp_path: Path
) -> None:
    code = home.code_dir(bot)
    head = git(code, "rev-parse", "HEAD")
    target = _reviewed_commit(tmp_path, remote, "workspace/TOOLS.md", "reviewed tools\n")
    ff = promote.preview_from(home, bot, "origin/feature")
    assert (ff.before, ff.target, ff.branch, ff.count) == (head, target, "main", 1)
    assert ff.commits == [f"{target[:7]} reviewed workspace/TOOLS.md"]
    assert ff.paths == ["workspace/TOOLS.md"]
    assert git(code, "rev-parse", "HEAD") == head  # only fetched
    assert not [e for e in read_events(home, bot) if e["action"] == "promote"]


def test_promote_from_refuses_a_branch_that_moved_since_its_preview(
    home: FleetHome, bot: str, remote: Path, tmp_path: Path
) -> None:
    code = home.code_dir(bot)
    head = git(code, "rev-parse", "HEAD")
    _reviewed_commit(tmp_path, remote, "a.md", "a\n")
    seen = promote.preview_from(home, bot, "origin/feature").target
    _reviewed_commit(tmp_path, remote, "b.md", "b, pushed after the review\n", base="feature")
    with pytest.raises(ProposalError, match="moved since it was reviewed"):
        asyncio.run(promote.promote_from(home, home.bot(bot), "origin/feature", expected=seen))
    assert git(code, "rev-parse", "HEAD") == head


def test_promote_from_refuses_what_does_not_fast_forward(
    home: FleetHome, bot: str, tree: Path, remote: Path, tmp_path: Path
) -> None:
    _reviewed_commit(tmp_path, remote, "a.md", "a\n")
    write(tree, "b.md", "b\n")
    run_promote(home, bot)  # the approved branch moves on its own
    head = git(home.code_dir(bot), "rev-parse", "HEAD")
    with pytest.raises(ProposalError, match="does not fast-forward"):
        asyncio.run(promote.promote_from(home, home.bot(bot), "origin/feature"))
    assert git(home.code_dir(bot), "rev-parse", "HEAD") == head


def test_promote_from_refuses_a_malformed_source(home: FleetHome, bot: str) -> None:
    from cftui.errors import UsageError

    for spec in ("origin", "-x/main", "origin/../main", "origin/--upload-pack=x"):
        with pytest.raises(UsageError):
            asyncio.run(promote.promote_from(home, home.bot(bot), spec))


def test_promote_refuses_a_file_rewritten_since_it_was_reviewed(
    home: FleetHome, bot: str, tree: Path
) -> None:
    write(tree, "workspace/skills/s.md", "reviewed\n")
    [seen] = scan.scan(home, bot).changes
    write(tree, "workspace/skills/s.md", "swapped after the review\n")
    head = git(home.code_dir(bot), "rev-parse", "HEAD")
    with pytest.raises(ProposalError, match="changed since it was reviewed"):
        asyncio.run(promote.promote(home, home.bot(bot), reviewed={seen.path: seen.sha}))
    assert git(home.code_dir(bot), "rev-parse", "HEAD") == head
    write(tree, "workspace/skills/s.md", "reviewed\n")
    result = asyncio.run(promote.promote(home, home.bot(bot), reviewed={seen.path: seen.sha}))
    assert result.paths == ["workspace/skills/s.md"]
