"""The save directory's dependency files against the rest of what the agent
can put there (beside test_save_dir_reject's link, fifo and huge file): the
save directory itself a fifo, a package.json hard-linked to a file outside
the bot's trees, a package.json that is a directory, a name full of control
characters. `cftui diff` says it in a refusal line, `cftui reject` puts the
approved file back by name, and nothing outside is read or changed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cftui.fleet import FleetHome

from .test_deps import SAVE, commit_manifest, manifest

APPROVED = manifest(**{"left-pad": "1.3.0"})


def _empty_save(home: FleetHome, bot: str) -> Path:
    save = home.code_dir(bot) / SAVE
    shutil.rmtree(save)
    return save


def test_a_save_dir_that_is_a_fifo_is_refused_without_waiting(
    cli, home: FleetHome, bot: str
) -> None:
    commit_manifest(home, bot, APPROVED)
    save = _empty_save(home, bot)
    os.mkfifo(save)  # opened to read, it would wait for a writer
    res = cli("diff", bot)
    assert res.code == 0, res.err
    assert "# refused" in res.out and "a fifo" in res.out
    res = cli("reject", bot, f"{SAVE}/package.json")
    assert res.code != 0 and len(res.err.strip().splitlines()) == 1, res.err
    assert "a fifo" in res.err and "Traceback" not in res.err
    assert Path(save).is_fifo()


def test_a_hard_linked_package_json_is_put_back_by_name_and_its_twin_kept(
    cli, home: FleetHome, bot: str, tmp_path: Path
) -> None:
    commit_manifest(home, bot, APPROVED)
    outside = tmp_path / "operator-notes.json"
    outside.write_text('{"precious": true}\n')
    pkg = home.code_dir(bot) / SAVE / "package.json"
    pkg.unlink()
    os.link(outside, pkg)
    res = cli("diff", bot)
    assert res.code == 0, res.err
    assert "# refused" in res.out and "hard link" in res.out
    assert "precious" not in res.out  # refused unread
    res = cli("reject", bot, f"{SAVE}/package.json")
    assert res.code == 0, res.err
    assert pkg.read_text() == APPROVED and os.stat(pkg).st_nlink == 1
    assert outside.read_text() == '{"precious": true}\n'


def test_a_package_json_that_is_a_directory_is_refused_and_put_back(
    cli, home: FleetHome, bot: str
) -> None:
    commit_manifest(home, bot, APPROVED)
    pkg = home.code_dir(bot) / SAVE / "package.json"
    pkg.unlink()
    (pkg / "deep").mkdir(parents=True)
    (pkg / "deep" / "x").write_text("x")
    res = cli("diff", bot)
    assert res.code == 0, res.err
    assert "# refused" in res.out and "a directory" in res.out
    res = cli("reject", bot, f"{SAVE}/package.json")
    assert res.code == 0, res.err
    assert pkg.read_text() == APPROVED


def test_a_hostile_dependency_name_is_shown_inert(cli, home: FleetHome, bot: str) -> None:
    commit_manifest(home, bot, APPROVED)
    evil = "evil\x1b]52;c;cHduZWQ=\x07\u202e"
    pkg = home.code_dir(bot) / SAVE / "package.json"
    pkg.write_text(manifest(**{evil: "1.0.0"}))
    res = cli("proposals", bot)
    assert res.code == 0, res.err
    assert "\x1b" not in res.out + res.err and "\u202e" not in res.out + res.err
    assert "not an npm package name" in res.out + res.err
