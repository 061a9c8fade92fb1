"""`cftui proposals`: what differs between the proposals tree and the
approved HEAD, with sizes, line counts and the agent's own commits."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from cftui.fleet import FleetHome
from cftui.proposal_tree import seed, stat_cache
from cftui.proposals import scan
from cftui.proposals.content import blob_id

from .conftest import git, write


def test_a_fresh_tree_proposes_nothing(home: FleetHome, bot: str, tree: Path) -> None:
    found = scan.scan(home, bot)
    assert found.seeded and found.changes == [] and found.refused == [] and found.commits == []
    assert found.approved == git(home.code_dir(bot), "rev-parse", "HEAD")
    assert sorted(os.listdir(tree)) == sorted(os.listdir(home.code_dir(bot)))


def test_added_changed_and_removed_files_with_sizes_and_line_counts(
    home: FleetHome, bot: str, tree: Path
) -> None:
    write(tree, "workspace/skills/weather/SKILL.md", "# Weather\nask the sky\n")
    soul = (tree / "workspace/SOUL.md").read_text().splitlines(keepends=True)
    write(tree, "workspace/SOUL.md", "".join([soul[0], "I am new.\n", *soul[1:-1]]))
    os.unlink(tree / "workspace/TOOLS.md")
    found = scan.scan(home, bot)
    by = {c.path: c for c in found.changes}
    assert set(by) == {
        "workspace/skills/weather/SKILL.md",
        "workspace/SOUL.md",
        "workspace/TOOLS.md",
    }
    added = by["workspace/skills/weather/SKILL.md"]
    assert (added.status, added.size, added.lines_added, added.lines_removed) == ("added", 22, 2, 0)
    assert added.sha == blob_id(b"# Weather\nask the sky\n")
    changed = by["workspace/SOUL.md"]
    assert (changed.status, changed.lines_added, changed.lines_removed) == ("changed", 1, 1)
    removed = by["workspace/TOOLS.md"]
    old = (home.code_dir(bot) / "workspace/TOOLS.md").read_bytes()
    assert (removed.status, removed.size, removed.old_size) == ("removed", None, len(old))
    assert removed.lines_removed == len(old.splitlines())


def test_an_executable_bit_is_a_change(home: FleetHome, bot: str, tree: Path) -> None:
    os.chmod(tree / "Dockerfile", 0o755)
    [change] = scan.scan(home, bot).changes
    assert (change.path, change.status, change.executable) == ("Dockerfile", "changed", True)


def test_the_stat_cache_never_hides_a_rewrite_with_the_old_mtime(
    home: FleetHome, bot: str, tree: Path
) -> None:
    path = tree / "workspace/SOUL.md"
    before = os.stat(path)
    scan.scan(home, bot)  # the cache is written
    data = path.read_bytes()
    path.write_bytes(data.replace(b"a", b"b", 1))  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # the agent can fake mtime
    [change] = scan.scan(home, bot).changes
    assert change.path == "workspace/SOUL.md"


def test_the_cache_lets_a_second_scan_skip_hashing(
    home: FleetHome, bot: str, tree: Path, monkeypatch
) -> None:
    # Past the racy window, a scan records what seeding could not (the
    # top-level names, whose ctime the move into the tree changed).
    time.sleep(2 * stat_cache.RACY_NS / 1e9)
    scan.scan(home, bot)
    read = []
    real = scan.read_at
    monkeypatch.setattr(scan, "read_at", lambda *a: read.append(a[1]) or real(*a))
    write(tree, "workspace/new.md", "x\n")
    assert [c.path for c in scan.scan(home, bot).changes] == ["workspace/new.md"]
    assert read == ["new.md"]  # hashed once; its bytes kept for the line counts


def test_the_agents_commits_are_listed_loose_and_packed(
    home: FleetHome, bot: str, tree: Path
) -> None:
    write(tree, "workspace/skills/a.md", "a\n")
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", "add skill a")
    write(tree, "workspace/skills/b.md", "b\n")
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", "add skill b\n\nwith a body")
    found = scan.scan(home, bot)
    assert [c.summary for c in found.commits] == ["add skill b", "add skill a"]
    assert found.commits[0].author == "t <t@example.invalid>"
    assert found.commits_note is None
    git(tree, "gc", "-q", "--prune=now")
    assert not [p for p in (tree / ".git/objects").iterdir() if len(p.name) == 2]
    assert [c.summary for c in scan.scan(home, bot).commits] == ["add skill b", "add skill a"]


def test_an_unseeded_bot_says_so(home: FleetHome, bot: str, tree: Path) -> None:
    subprocess.run(["rm", "-rf", str(tree)], check=True)
    assert scan.scan(home, bot).seeded is False
    assert seed.ensure_seeded(home, bot) is True
    assert seed.ensure_seeded(home, bot) is False
    assert scan.scan(home, bot).changes == []


def test_seeding_copies_blobs_byte_for_byte_whatever_the_attributes(
    home: FleetHome, bot: str
) -> None:
    code = home.code_dir(bot)
    write(code, ".gitattributes", "*.txt ident eol=crlf\n")
    write(code, "id.txt", "$Id$\nline\n")
    git(code, "add", "-A")
    git(code, "commit", "-qm", "attributes")
    seed.seed(home, bot)
    assert (home.proposals_dir(bot) / "id.txt").read_bytes() == b"$Id$\nline\n"
    assert scan.scan(home, bot).changes == []
