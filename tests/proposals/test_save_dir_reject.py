"""`cftui diff` shows the save directory's dependency files like any other
proposal, and `cftui reject` puts them back as the approved commit has them
(logged); a linked save directory or a huge file is handled in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cftui.fleet import FleetHome

from .conftest import git, write
from .test_deps import SAVE, commit_manifest, manifest

APPROVED = manifest(**{"left-pad": "1.3.0"})


def events(home: FleetHome) -> list[dict]:
    return [json.loads(ln) for ln in home.events_log.read_text().splitlines()]


def test_diff_shows_the_save_dirs_package_json(cli, home: FleetHome, bot: str) -> None:
    commit_manifest(home, bot, APPROVED)
    write(home.code_dir(bot), f"{SAVE}/package.json", manifest(**{"left-pad": "1.4.0"}))
    write(home.code_dir(bot), f"{SAVE}/package-lock.json", '{"lockfileVersion": 3}\n')
    res = cli("diff", bot)
    assert res.code == 0, res.err
    assert f"diff --git a/{SAVE}/package.json b/{SAVE}/package.json" in res.out
    assert '-{"name": "save", "private": true, "dependencies": {"left-pad": "1.3.0"}}' in res.out
    assert '+{"name": "save", "private": true, "dependencies": {"left-pad": "1.4.0"}}' in res.out
    assert f"new file mode 100644\n--- /dev/null\n+++ b/{SAVE}/package-lock.json" in res.out
    one = cli("diff", bot, f"{SAVE}/package-lock.json")
    assert one.code == 0 and "package.json b/" not in one.out and "lockfileVersion" in one.out


def test_reject_puts_the_approved_file_back_and_logs_it(cli, home: FleetHome, bot: str) -> None:
    commit_manifest(home, bot, APPROVED)
    code = home.code_dir(bot)
    write(code, f"{SAVE}/package.json", manifest(**{"evil": "6.6.6"}))
    write(code, f"{SAVE}/package-lock.json", "{}")  # none approved: removed
    write(code, f"{SAVE}/notes.txt", "the bot's own save state")
    res = cli("reject", bot, f"{SAVE}/package.json")
    assert res.code == 0, res.err
    assert f"{bot}: rejected {SAVE}/package.json" in res.out
    assert (code / SAVE / "package.json").read_text() == APPROVED
    assert (code / SAVE / "package-lock.json").exists()  # not named: left
    assert events(home)[-1]["paths"] == [f"{SAVE}/package.json"]
    res = cli("reject", bot, SAVE)  # a directory: its dependency files only
    assert res.code == 0, res.err
    assert not (code / SAVE / "package-lock.json").exists()
    assert (code / SAVE / "notes.txt").read_text() == "the bot's own save state"
    assert git(code, "status", "--porcelain", "--", f"{SAVE}/package.json") == ""
    assert cli("diff", bot).out == ""


def test_reject_all_puts_the_save_dir_back_too(cli, home: FleetHome, bot: str) -> None:
    commit_manifest(home, bot, APPROVED)
    code = home.code_dir(bot)
    write(code, f"{SAVE}/package.json", manifest(**{"evil": "6.6.6"}))
    write(home.proposals_dir(bot), "workspace/skills/x.md", "x")
    res = cli("reject", bot)
    assert res.code == 0, res.err
    assert (code / SAVE / "package.json").read_text() == APPROVED
    assert events(home)[-1]["save_dir"] == [f"{SAVE}/package.json"]
    assert not (home.proposals_dir(bot) / "workspace/skills/x.md").exists()


def test_a_huge_or_special_save_file_is_removed_by_name_not_read(
    cli, home: FleetHome, bot: str
) -> None:
    commit_manifest(home, bot, APPROVED)
    code = home.code_dir(bot)
    huge = code / SAVE / "package.json"
    huge.unlink()
    with open(huge, "wb") as f:  # sparse: 4 GiB that reads as zeros
        f.truncate(4 << 30)
    lock = code / SAVE / "package-lock.json"
    os.mkfifo(lock)  # opening it to read would wait for a writer
    res = cli("diff", bot)
    assert res.code == 0, res.err
    assert f"# refused {SAVE}/package.json" in res.out and "larger than" in res.out
    res = cli("reject", bot, f"{SAVE}/package.json", f"{SAVE}/package-lock.json")
    assert res.code == 0, res.err
    assert huge.read_text() == APPROVED and not os.path.lexists(lock)


def test_a_linked_save_dir_is_refused_in_one_line_and_nothing_is_touched(
    cli, home: FleetHome, bot: str, tmp_path: Path
) -> None:
    commit_manifest(home, bot, APPROVED)
    code = home.code_dir(bot)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "package.json").write_text("precious")
    save = code / SAVE
    for name in os.listdir(save):
        (save / name).unlink()
    save.rmdir()
    save.symlink_to(outside, target_is_directory=True)
    res = cli("diff", bot)
    assert res.code == 0, res.err
    assert "# refused" in res.out and "symbolic link" in res.out
    res = cli("reject", bot, f"{SAVE}/package.json")
    assert res.code != 0
    assert len(res.err.strip().splitlines()) == 1 and "symbolic link" in res.err, res.err
    assert "Traceback" not in res.err
    assert (outside / "package.json").read_text() == "precious"
    assert save.is_symlink()
