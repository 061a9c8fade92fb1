"""cftui's records of the proposals tree: a directory whose listing is as
recorded replays its verdict, and nothing the agent can do to a file (rewrite
it with the old mtime, link it, swap it, name it in bytes that are not UTF-8)
makes a scan trust a stale one."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson

from cftui.fleet import FleetHome
from cftui.proposal_tree import approved, stat_cache
from cftui.proposals import scan

from .conftest import git, write


def _settled(home: FleetHome, bot: str):
    """A scan past the racy window: every directory recorded."""
    time.sleep(2 * stat_cache.RACY_NS / 1e9)
    return scan.scan(home, bot)


def _reads(monkeypatch) -> list[str]:
    read: list[str] = []
    real = scan.read_at
    monkeypatch.setattr(scan, "read_at", lambda *a: read.append(a[1]) or real(*a))
    return read


def test_an_unchanged_tree_is_replayed_with_the_same_verdict(
    home: FleetHome, bot: str, tree: Path, monkeypatch
) -> None:
    write(tree, "workspace/skills/w/SKILL.md", "# W\nnew\n")
    (tree / "workspace/TOOLS.md").unlink()
    first = _settled(home, bot)
    read = _reads(monkeypatch)
    git_runs: list[tuple] = []
    real_blobs = approved.blobs
    monkeypatch.setattr(
        approved, "blobs", lambda *a: git_runs.append(a) or real_blobs(*a), raising=True
    )
    again = scan.scan(home, bot)
    assert again.changes == first.changes and again.refused == first.refused
    assert read == ["SKILL.md"]  # only the proposed bytes, for a promotion to commit
    assert git_runs == []  # the line counts came with the record


def test_a_hard_link_made_to_a_recorded_file_is_refused(
    home: FleetHome, bot: str, tree: Path, tmp_path: Path
) -> None:
    _settled(home, bot)
    os.link(tree / "workspace/SOUL.md", tmp_path / "outside-name")
    found = scan.scan(home, bot)
    [refusal] = found.refused
    assert refusal.path == "workspace/SOUL.md" and "hard link" in refusal.reason


def test_a_file_swapped_for_a_link_in_a_recorded_directory_is_refused(
    home: FleetHome, bot: str, tree: Path
) -> None:
    _settled(home, bot)
    (tree / "workspace/SOUL.md").unlink()
    os.symlink("/etc/passwd", tree / "workspace/SOUL.md")
    [refusal] = scan.scan(home, bot).refused
    assert refusal.path == "workspace/SOUL.md" and "symbolic link" in refusal.reason


def test_a_name_that_is_not_utf8_survives_the_records(
    home: FleetHome, bot: str, tree: Path
) -> None:
    raw = os.fsencode(tree / "workspace") + b"/caf\xe9.md"
    with open(raw, "wb") as f:
        f.write(b"latin-1 name\n")
    first = _settled(home, bot)
    [change] = first.changes
    assert os.fsencode(change.path) == b"workspace/caf\xe9.md"
    assert scan.scan(home, bot).changes == first.changes


def test_a_record_is_not_replayed_against_another_approved_commit(
    home: FleetHome, bot: str, tree: Path
) -> None:
    write(tree, "workspace/idea.md", "idea\n")
    assert [c.path for c in _settled(home, bot).changes] == ["workspace/idea.md"]
    code = home.code_dir(bot)
    write(code, "workspace/idea.md", "idea\n")
    git(code, "add", "-A")
    git(code, "commit", "-qm", "the operator made it approved")
    assert scan.scan(home, bot).changes == []


def test_a_racy_record_is_judged_again(home: FleetHome, bot: str, tree: Path) -> None:
    """A directory recorded within the racy window of its newest entry could
    hide a same-size rewrite in the same clock tick: its verdict is not
    replayed, and that file's blob id is not reused."""
    _settled(home, bot)
    write(tree, "workspace/SOUL.md", "racy\n")
    scan.scan(home, bot)  # at once: the record of workspace/ is racy
    cache = stat_cache.load(home.proposals_index(bot))
    record = cache.lookup("workspace/")
    assert record is not None and not record.trusted
    detail = cache.detail("workspace/")
    assert detail is not None and "SOUL.md" not in detail.known()


def test_a_broken_or_foreign_cache_is_only_a_slower_scan(
    home: FleetHome, bot: str, tree: Path
) -> None:
    write(tree, "workspace/idea.md", "idea\n")
    want = _settled(home, bot).changes
    index = home.proposals_index(bot)
    for shard in stat_cache.details_dir_of(index).iterdir():
        shard.write_bytes(b"{not json")
    listing = index.with_name(scan.LISTING_NAME)
    body = orjson.loads(listing.read_bytes())
    body["commit"] = "0" * 40  # the listing of another commit is never used
    listing.write_bytes(orjson.dumps(body))
    index.write_bytes(orjson.dumps({"v": stat_cache.VERSION, "dirs": {"": [1, 2]}}))
    approved._LISTINGS.clear()
    assert scan.scan(home, bot).changes == want
