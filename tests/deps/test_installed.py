"""`state/installed/` swapped in whole, keyed by the approved list's digest;
npm's failure told in one line."""

from __future__ import annotations

import os
from pathlib import Path

from cftui.deps import installed
from cftui.runtime.npm_install import install_command, npm_reason


def test_a_successful_install_replaces_installed_and_records_its_digest(tmp_path: Path) -> None:
    state = tmp_path
    (state / "installed").mkdir()
    (state / "installed" / "old.js").write_text("old")
    staging = installed.new_staging(state, {"package.json": b"{}"}, None)
    (staging / "node_modules").mkdir()
    assert not installed.is_current(state, "d1")
    installed.swap_in(state, "d1", "c0ffee", None)
    assert (state / "installed" / "package.json").read_bytes() == b"{}"
    assert (state / "installed" / "node_modules").is_dir()
    assert not (state / "installed" / "old.js").exists()
    assert installed.is_current(state, "d1") and not installed.is_current(state, "d2")
    assert sorted(os.listdir(state)) == ["installed"]


def test_a_failed_install_leaves_the_previous_one(tmp_path: Path) -> None:
    state = tmp_path
    installed.new_staging(state, {"package.json": b"{}"}, None)
    installed.swap_in(state, "d1", "c", None)
    installed.new_staging(state, {"package.json": b'{"x": 1}'}, None)
    installed.discard_staging(state)
    assert installed.is_current(state, "d1")
    assert (state / "installed" / "package.json").read_bytes() == b"{}"
    assert sorted(os.listdir(state)) == ["installed"]


def test_a_leftover_staging_dir_is_replaced(tmp_path: Path) -> None:
    (tmp_path / ".installed-new").mkdir()
    (tmp_path / ".installed-new" / "junk").write_text("x")
    staging = installed.new_staging(tmp_path, {"package.json": b"{}"}, None)
    assert sorted(os.listdir(staging)) == ["package.json"]


def test_a_forged_or_linked_marker_is_not_current(tmp_path: Path) -> None:
    (tmp_path / "installed").mkdir()
    marker = tmp_path / "installed" / installed.MARKER
    marker.write_text("not json")
    assert installed.installed_digest(tmp_path) is None
    marker.unlink()
    (tmp_path / "elsewhere.json").write_text('{"digest": "d1"}')
    os.symlink(tmp_path / "elsewhere.json", marker)
    assert installed.installed_digest(tmp_path) is None


def test_a_linked_installed_dir_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("k")
    state = tmp_path / "state"
    state.mkdir()
    os.symlink(outside, state / "installed")
    installed.new_staging(state, {"package.json": b"{}"}, None)
    installed.swap_in(state, "d", "c", None)
    assert (outside / "keep").read_text() == "k"
    assert not (state / "installed").is_symlink()


def test_npm_reason_is_one_line_without_log_pointers() -> None:
    log = (
        "npm ERR! code E403\n"
        "npm ERR! 403 403 Forbidden - GET http://registry.test:4873/left-pad\n"
        "npm ERR! 403 In most cases, you or one of your dependencies are requesting\n"
        "\n"
        "npm ERR! A complete log of this run can be found in:\n"
        "npm ERR!     /tmp/.npm/_logs/2026-debug-0.log\n"
    )
    reason = npm_reason(log)
    assert reason.startswith("403 403 Forbidden - GET http://registry.test:4873/left-pad")
    assert "\n" not in reason and "complete log" not in reason and "/tmp/" not in reason
    assert npm_reason("\x1b[31msegfault\x1b[0m\n") == "segfault"


def test_npm_ci_only_with_a_lockfile() -> None:
    assert install_command(True)[:2] == ["npm", "ci"]
    assert install_command(False)[:2] == ["npm", "install"]
    assert "--ignore-scripts" in install_command(False)
