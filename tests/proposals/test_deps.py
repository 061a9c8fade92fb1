"""Declared dependencies (#24): the approved list is the committed one; the
save directory the gateway writes shows as a dependency change, read as
hostile input."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from cftui.deps import declared
from cftui.deps.manifest import ManifestError, parse
from cftui.errors import ProposalError
from cftui.fleet import FleetHome
from cftui.proposal_tree import seed
from cftui.proposals import promote
from cftui.proposals.scan import scan

from .conftest import git, write

SAVE = "workspace/prop_save"


def manifest(**deps: str) -> str:
    return json.dumps({"name": "save", "private": True, "dependencies": deps})


def commit_manifest(home: FleetHome, bot: str, text: str) -> None:
    code = home.code_dir(bot)
    write(code, f"{SAVE}/package.json", text)
    git(code, "add", f"{SAVE}/package.json")
    git(code, "commit", "-q", "-m", "deps")
    seed.seed(home, bot)  # the proposals tree follows the approved tree


def test_the_approved_list_is_the_committed_one_not_the_save_dirs(
    home: FleetHome, bot: str
) -> None:
    commit_manifest(home, bot, manifest(**{"left-pad": "1.3.0"}))
    code = home.code_dir(bot)
    write(code, f"{SAVE}/package.json", manifest(**{"left-pad": "1.3.0", "evil": "9.9.9"}))
    deps = declared.approved_deps(code, bot)
    got = declared.approved_declared(deps, bot)
    assert got is not None and got.dependencies == {"left-pad": "1.3.0"}
    assert deps.lockfile is None and deps.commit == git(code, "rev-parse", "HEAD")


def test_a_save_dir_edit_shows_as_dependency_changes(cli, home: FleetHome, bot: str) -> None:
    commit_manifest(home, bot, manifest(**{"left-pad": "1.3.0", "gone": "^1.0.0", "same": "1"}))
    code = home.code_dir(bot)
    write(
        code,
        f"{SAVE}/package.json",
        manifest(**{"left-pad": "1.4.0", "@acme/new": "2.0.0", "same": "1"}),
    )
    found = scan(home, bot)
    assert found.dependencies is not None
    assert [(c.name, c.status, c.approved, c.proposed) for c in found.dependencies.changes] == [
        ("@acme/new", "added", None, "2.0.0"),
        ("gone", "removed", "^1.0.0", None),
        ("left-pad", "changed", "1.3.0", "1.4.0"),
    ]
    assert found.count == 1
    res = cli("proposals", bot, "--json")
    assert res.code == 0, res.err
    data = json.loads(res.out)["dependencies"]
    assert data["path"] == f"{SAVE}/package.json"
    assert {c["name"]: c["status"] for c in data["changes"]} == {
        "@acme/new": "added",
        "gone": "removed",
        "left-pad": "changed",
    }
    res = cli("proposals", bot)
    assert res.code == 0, res.err
    assert "+ @acme/new 2.0.0" in res.out
    assert "- gone (was ^1.0.0)" in res.out
    assert "~ left-pad 1.3.0 -> 1.4.0" in res.out


def test_an_unchanged_save_dir_proposes_nothing(home: FleetHome, bot: str) -> None:
    commit_manifest(home, bot, manifest(**{"left-pad": "1.3.0"}))
    assert scan(home, bot).dependencies is None


def test_a_new_package_json_with_none_approved_is_all_added(home: FleetHome, bot: str) -> None:
    write(home.code_dir(bot), f"{SAVE}/package.json", manifest(**{"left-pad": "1.3.0"}))
    found = scan(home, bot)
    assert found.dependencies is not None
    assert [(c.name, c.status) for c in found.dependencies.changes] == [("left-pad", "added")]


def test_a_removed_package_json_removes_every_package(home: FleetHome, bot: str) -> None:
    commit_manifest(home, bot, manifest(**{"left-pad": "1.3.0"}))
    os.unlink(home.code_dir(bot) / SAVE / "package.json")
    found = scan(home, bot)
    assert found.dependencies is not None
    assert [(c.name, c.status) for c in found.dependencies.changes] == [("left-pad", "removed")]


def test_a_changed_lockfile_alone_is_a_dependency_change(home: FleetHome, bot: str) -> None:
    commit_manifest(home, bot, manifest(**{"left-pad": "1.3.0"}))
    write(home.code_dir(bot), f"{SAVE}/package-lock.json", "{}")
    found = scan(home, bot)
    assert found.dependencies is not None and found.dependencies.lockfile_changed
    assert found.dependencies.changes == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not JSON"),
        ("[]", "not a JSON object"),
        (json.dumps({"dependencies": ["x"]}), "dependencies is not an object"),
        (json.dumps({"dependencies": {"../../etc": "1"}}), "is not an npm package name"),
        (json.dumps({"dependencies": {"Evil\x1b[2J": "1"}}), "is not an npm package name"),
        (json.dumps({"dependencies": {"ok": "1\n2"}}), "short printable string"),
        (json.dumps({"dependencies": {"ok": 1}}), "short printable string"),
        ("x" * (300 << 10), "larger than"),
        ("[" * 100000 + "]" * 100000, "not"),
    ],
    ids=["json", "array", "table", "path", "escape", "newline", "number", "large", "deep"],
)
def test_hostile_save_dir_files_get_one_line_reasons(
    cli, home: FleetHome, bot: str, text: str, reason: str
) -> None:
    write(home.code_dir(bot), f"{SAVE}/package.json", text)
    found = scan(home, bot)
    assert found.dependencies is not None and found.dependencies.changes == []
    note = found.dependencies.note or ""
    assert reason in note and "\n" not in note and "\x1b" not in note
    res = cli("proposals", bot)
    assert res.code == 0, res.err
    assert "Traceback" not in res.err and "\x1b" not in res.out


def test_a_linked_package_json_is_refused_not_followed(
    home: FleetHome, bot: str, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.json"
    outside.write_text(manifest(**{"stolen": "1"}))
    target = home.code_dir(bot) / SAVE
    target.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, target / "package.json")
    found = scan(home, bot)
    assert found.dependencies is not None
    assert "symbolic link" in (found.dependencies.note or "")
    assert found.dependencies.changes == []


def test_parse_validates_names_and_bounds() -> None:
    ok = parse(
        json.dumps(
            {"dependencies": {"@scope/a.b": "^1"}, "optionalDependencies": {"c": "~2"}}
        ).encode(),
        "p",
    )
    assert ok.dependencies == {"@scope/a.b": "^1", "c": "~2"}
    with pytest.raises(ManifestError, match="more than"):
        parse(json.dumps({"dependencies": {f"p{i}": "1" for i in range(501)}}).encode(), "p")
    with pytest.raises(ManifestError, match="not UTF-8"):
        parse(b"\xff\xfe", "p")


def test_the_digest_follows_both_files() -> None:
    a = declared.ApprovedDeps("c", b"{}", None)
    assert a.digest() == declared.ApprovedDeps("x", b"{}", None).digest()
    assert a.digest() != declared.ApprovedDeps("c", b"{}", b"").digest()
    assert a.digest() != declared.ApprovedDeps("c", b"{ }", None).digest()


def run_promote(home: FleetHome, bot: str, paths=(), reviewed=None):
    return asyncio.run(promote.promote(home, home.bot(bot), paths, reviewed=reviewed))


def test_a_save_dir_dependency_change_is_promoted_like_any_other(home: FleetHome, bot: str) -> None:
    commit_manifest(home, bot, manifest(**{"left-pad": "1.3.0"}))
    code = home.code_dir(bot)
    wanted = manifest(**{"left-pad": "1.4.0"})
    write(code, f"{SAVE}/package.json", wanted)
    write(code, f"{SAVE}/package-lock.json", '{"lockfileVersion": 3}\n')
    result = run_promote(home, bot, [f"{SAVE}/package.json"])
    assert result.paths == [f"{SAVE}/package.json"]
    assert git(code, "show", f"HEAD:{SAVE}/package.json") == wanted
    assert git(code, "log", "-1", "--format=%an") == bot
    deps = declared.approved_deps(code, bot)
    assert deps.manifest == wanted.encode() and deps.lockfile is None
    found = scan(home, bot)
    assert found.changes == []  # the proposals tree's copy followed
    assert found.dependencies is not None and found.dependencies.lockfile_changed
    assert found.dependencies.changes == []
    run_promote(home, bot)  # everything: the lockfile too
    assert scan(home, bot).dependencies is None
    assert git(code, "status", "--porcelain") == ""


def test_a_hostile_package_json_blocks_only_its_own_promotion(
    home: FleetHome, bot: str, tree: Path
) -> None:
    code = home.code_dir(bot)
    write(code, f"{SAVE}/package.json", json.dumps({"dependencies": {"../x": "1"}}))
    write(tree, "workspace/skills/a/SKILL.md", "a\n")
    result = run_promote(home, bot)
    assert result.paths == ["workspace/skills/a/SKILL.md"]
    assert [r.path for r in result.refused] == [f"{SAVE}/package.json", f"{SAVE}/package-lock.json"]
    with pytest.raises(ProposalError, match="is not an npm package name"):
        run_promote(home, bot, [f"{SAVE}/package.json"])
    assert declared.approved_deps(code, bot).manifest is None


def test_a_review_that_did_not_show_the_save_dir_does_not_promote_it(
    home: FleetHome, bot: str, tree: Path
) -> None:
    code = home.code_dir(bot)
    write(code, f"{SAVE}/package.json", manifest(**{"left-pad": "1.3.0"}))
    write(tree, "workspace/skills/a/SKILL.md", "a\n")
    found = scan(home, bot)
    reviewed = {c.path: c.sha for c in found.changes}
    result = run_promote(home, bot, reviewed=reviewed)
    assert result.paths == ["workspace/skills/a/SKILL.md"]
    assert declared.approved_deps(code, bot).manifest is None
