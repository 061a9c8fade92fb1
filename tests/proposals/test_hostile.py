"""The proposals tree is hostile input: each trap the agent can plant is
refused with a reason, never followed, read or run, and nothing escapes."""

from __future__ import annotations

import os
import stat
import subprocess
import time
import zlib
from pathlib import Path

import pytest

from cftui.errors import ProposalError
from cftui.fleet import FleetHome
from cftui.proposal_tree import seed
from cftui.proposals import agent_git, promote, reject, scan
from cftui.proposals.model import Proposals

from .conftest import git, write


def refused(found: Proposals) -> dict[str, str]:
    return {r.path: r.reason for r in found.refused}


def planted_hook(tmp_path: Path, tree: Path) -> Path:
    """A post-checkout hook (and every other) plus an fsmonitor in the
    agent's git, each touching a marker if it ever runs on the host."""
    marker = tmp_path / "hook-ran"
    script = f"#!/bin/sh\ntouch {marker}\n"
    hooks = tree / ".git/hooks"
    for name in ("post-checkout", "pre-commit", "post-commit", "reference-transaction"):
        write(hooks, name, script, 0o755)
    write(tree, ".git/fsmonitor.sh", script, 0o755)
    with open(tree / ".git/config", "a") as f:
        f.write(f"[core]\n\tfsmonitor = {tree}/.git/fsmonitor.sh\n\thooksPath = {hooks}\n")
    write(tree, ".gitattributes", "* filter=evil\n")
    with open(tree / ".git/config", "a") as f:
        f.write(
            f'[filter "evil"]\n\tclean = {tree}/.git/fsmonitor.sh\n\tsmudge = {tree}/.git/fsmonitor.sh\n'
        )
    return marker


def test_a_symlink_to_etc_passwd_is_refused_and_never_read(
    home: FleetHome, bot: str, tree: Path
) -> None:
    os.symlink("/etc/passwd", tree / "workspace/passwd")
    os.symlink("/etc", tree / "workspace/skills/etc")
    found = scan.scan(home, bot)
    reasons = refused(found)
    assert (
        "symbolic link" in reasons["workspace/passwd"]
        and "/etc/passwd" in reasons["workspace/passwd"]
    )
    assert "symbolic link" in reasons["workspace/skills/etc"]
    assert found.changes == []
    with pytest.raises(ProposalError, match="symbolic link"):
        _promote(home, bot, ["workspace/passwd"])
    assert not os.path.lexists(home.code_dir(bot) / "workspace/passwd")


def test_a_directory_swapped_for_a_link_hides_no_removal(
    home: FleetHome, bot: str, tree: Path
) -> None:
    subprocess.run(["rm", "-rf", str(tree / "workspace/memory")], check=True)
    os.symlink("/etc", tree / "workspace/memory")
    found = scan.scan(home, bot)
    reasons = refused(found)
    assert "under workspace/memory, which is refused" in reasons["workspace/memory/README.md"]
    assert found.changes == []


def test_a_planted_hook_fsmonitor_and_filter_never_run(
    home: FleetHome, bot: str, tree: Path, tmp_path: Path
) -> None:
    marker = planted_hook(tmp_path, tree)
    write(tree, "workspace/skills/s.md", "skill\n")
    found = scan.scan(home, bot)
    assert [c.path for c in found.changes] == [".gitattributes", "workspace/skills/s.md"]
    _promote(home, bot, ["workspace/skills/s.md"])
    asyncio_run(reject.reject(home, bot, [".gitattributes"]))
    asyncio_run(reject.reject(home, bot))  # the whole tree remade
    assert not marker.exists()
    assert not (tree / ".git/hooks/post-checkout").exists()


def test_nested_git_metadata_is_refused(home: FleetHome, bot: str, tree: Path) -> None:
    write(tree, "workspace/skills/x/.git/config", "[core]\n\tfsmonitor = /bin/true\n")
    write(tree, "workspace/.git", "gitdir: /etc\n")
    reasons = refused(scan.scan(home, bot))
    assert "git metadata" in reasons["workspace/skills/x/.git"]
    assert "git metadata" in reasons["workspace/.git"]


def test_a_2gb_sparse_file_is_refused_unread(home: FleetHome, bot: str, tree: Path) -> None:
    with open(tree / "workspace/huge.bin", "wb") as f:
        f.truncate(2 << 30)
    started = time.monotonic()
    reasons = refused(scan.scan(home, bot))
    assert time.monotonic() - started < 5  # 2 GiB were not read
    assert "larger than 16 MiB (2147483648 bytes)" in reasons["workspace/huge.bin"]


def test_a_fifo_is_refused_without_blocking(home: FleetHome, bot: str, tree: Path) -> None:
    os.mkfifo(tree / "workspace/SOUL.md.new")
    os.unlink(tree / "workspace/TOOLS.md")
    os.mkfifo(tree / "workspace/TOOLS.md")  # where a file was: not a removal either
    found = scan.scan(home, bot)
    reasons = refused(found)
    assert "fifo" in reasons["workspace/SOUL.md.new"] and "fifo" in reasons["workspace/TOOLS.md"]
    assert found.changes == []


def test_a_setuid_file_is_refused(home: FleetHome, bot: str, tree: Path) -> None:
    write(tree, "workspace/run.sh", "#!/bin/sh\n", 0o4755)
    assert "setuid" in refused(scan.scan(home, bot))["workspace/run.sh"]


def test_a_hard_link_to_a_host_file_is_refused(
    home: FleetHome, bot: str, tree: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("operator's secret\n")
    os.link(secret, tree / "workspace/secret.md")
    found = scan.scan(home, bot)
    assert "hard link" in refused(found)["workspace/secret.md"]
    result = _promote(home, bot, [])
    assert result is None  # nothing else to promote: refused
    assert not (home.code_dir(bot) / "workspace/secret.md").exists()


def test_promoting_everything_leaves_the_refused_out_and_lists_them(
    home: FleetHome, bot: str, tree: Path
) -> None:
    os.symlink("/etc/passwd", tree / "workspace/passwd")
    write(tree, "workspace/skills/ok.md", "fine\n")
    result = _promote(home, bot, [])
    assert result is not None and result.paths == ["workspace/skills/ok.md"]
    assert [r.path for r in result.refused] == ["workspace/passwd"]
    assert (home.code_dir(bot) / "workspace/skills/ok.md").read_text() == "fine\n"
    assert not os.path.lexists(home.code_dir(bot) / "workspace/passwd")


def test_rejecting_a_link_removes_the_link_not_its_target(
    home: FleetHome, bot: str, tree: Path, tmp_path: Path
) -> None:
    target = tmp_path / "outside"
    target.mkdir()
    (target / "keep").write_text("keep\n")
    subprocess.run(["rm", "-rf", str(tree / "workspace/skills")], check=True)
    os.symlink(target, tree / "workspace/skills")
    done = asyncio_run(reject.reject(home, bot, ["workspace/skills"]))
    assert done[0] == "workspace/skills"
    assert (target / "keep").read_text() == "keep\n"
    assert stat.S_ISDIR(os.lstat(tree / "workspace/skills").st_mode)
    assert scan.scan(home, bot).refused == []


def test_the_agents_git_is_read_without_following_anything(
    home: FleetHome, bot: str, tree: Path, tmp_path: Path
) -> None:
    write(tree, "x.md", "x\n")
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", "mine")
    head = agent_git.read_head(tree)
    assert head is not None
    # Alternates naming the approved repo, a loose object that is a link to a
    # host file, and a zlib bomb: none is followed, none crashes the scan.
    write(tree, ".git/objects/info/alternates", f"{home.code_dir(bot)}/.git/objects\n")
    obj = tree / ".git/objects" / head[:2] / head[2:]
    os.chmod(obj, 0o644)
    os.unlink(obj)
    bomb = zlib.compress(b"commit 999999999\0" + b"\0" * (64 << 20), 9)
    obj.write_bytes(bomb)
    found = scan.scan(home, bot)
    assert found.commits == [] and found.commits_note
    os.unlink(obj)
    os.symlink("/etc/passwd", obj)
    found = scan.scan(home, bot)
    assert found.commits == [] and "unreadable" in (found.commits_note or "")
    os.unlink(tree / ".git/HEAD")
    os.symlink("/etc/passwd", tree / ".git/HEAD")
    assert agent_git.read_head(tree) is None
    assert scan.scan(home, bot).commits == []


def test_a_link_in_place_of_the_tree_is_refused(home: FleetHome, bot: str, tree: Path) -> None:
    subprocess.run(["rm", "-rf", str(tree)], check=True)
    os.symlink("/etc", tree)
    with pytest.raises(ProposalError):
        scan.scan(home, bot)
    with pytest.raises(ProposalError, match="not a directory"):
        seed.seed(home, bot)


def asyncio_run(coro):
    import asyncio

    return asyncio.run(coro)


def _promote(home: FleetHome, bot: str, paths: list[str]):
    try:
        return asyncio_run(promote.promote(home, home.bot(bot), paths))
    except ProposalError as exc:
        if not paths and "nothing to promote" in str(exc):
            return None
        raise
