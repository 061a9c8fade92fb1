"""`state/installed/` swapped in whole, keyed by the approved list's digest;
npm's failure told in one line. The steps run over both trees: this
machine's (`LocalState`) and a shell's on the machine holding the tree
(`ShellState`, here a real `sh` run in the directory, as another host runs
it as the gateway's user)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cftui.deps import installed
from cftui.deps.installed import InstallError, LocalState, ShellState, StateTree
from cftui.runtime.npm_install import install_command, npm_reason

Trees = Callable[..., StateTree]


def _shell_state(state: Path, where: str = "state/") -> ShellState:
    def run(script: str, stdin: bytes | None) -> tuple[int, bytes, str]:
        done = subprocess.run(["sh", "-c", script], cwd=state, input=stdin or b"",
                              capture_output=True, timeout=30)  # fmt: skip
        return done.returncode, done.stdout, done.stderr.decode(errors="replace")

    return ShellState(run, str(state), where)


@pytest.fixture(params=["local", "shell"])
def tree_of(request: pytest.FixtureRequest) -> Trees:
    if request.param == "local":
        return lambda state, where="state/": LocalState(state, None, where)
    return _shell_state


def test_a_successful_install_replaces_installed_and_records_its_digest(
    tmp_path: Path, tree_of: Trees
) -> None:
    state, tree = tmp_path, tree_of(tmp_path)
    (state / "installed").mkdir()
    (state / "installed" / "old.js").write_text("old")
    staging = Path(installed.new_staging(tree, {"package.json": b"{}"}))
    (staging / "node_modules").mkdir()
    assert not installed.is_current(tree, "d1")
    installed.swap_in(tree, "d1", "c0ffee")
    assert (state / "installed" / "package.json").read_bytes() == b"{}"
    assert (state / "installed" / "node_modules").is_dir()
    assert not (state / "installed" / "old.js").exists()
    assert installed.is_current(tree, "d1") and not installed.is_current(tree, "d2")
    assert sorted(os.listdir(state)) == ["installed"]


def test_a_failed_install_leaves_the_previous_one(tmp_path: Path, tree_of: Trees) -> None:
    state, tree = tmp_path, tree_of(tmp_path)
    installed.new_staging(tree, {"package.json": b"{}"})
    installed.swap_in(tree, "d1", "c")
    installed.new_staging(tree, {"package.json": b'{"x": 1}'})
    installed.discard_staging(tree)
    assert installed.is_current(tree, "d1")
    assert (state / "installed" / "package.json").read_bytes() == b"{}"
    assert sorted(os.listdir(state)) == ["installed"]


def test_a_leftover_staging_dir_is_replaced(tmp_path: Path, tree_of: Trees) -> None:
    (tmp_path / ".installed-new").mkdir()
    (tmp_path / ".installed-new" / "junk").write_text("x")
    staging = installed.new_staging(tree_of(tmp_path), {"package.json": b"{}"})
    assert sorted(os.listdir(staging)) == ["package.json"]


def test_a_forged_or_linked_marker_is_not_current(tmp_path: Path, tree_of: Trees) -> None:
    tree = tree_of(tmp_path)
    (tmp_path / "installed").mkdir()
    marker = tmp_path / "installed" / installed.MARKER
    marker.write_text("not json")
    assert installed.installed_digest(tree) is None
    marker.unlink()
    (tmp_path / "elsewhere.json").write_text('{"digest": "d1"}')
    os.symlink(tmp_path / "elsewhere.json", marker)
    assert installed.installed_digest(tree) is None


@pytest.mark.parametrize("name", ["installed", ".installed-new", ".installed-old"])
def test_a_planted_link_refuses_the_install_and_nothing_outside_is_touched(
    tmp_path: Path, name: str, tree_of: Trees
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("k")
    (outside / installed.MARKER).write_text('{"digest": "d"}')
    state = tmp_path / "state"
    state.mkdir()
    os.symlink(outside, state / name)
    tree = tree_of(state, "bot: state/")
    assert not installed.is_current(tree, "d")  # the marker behind the link is not read
    with pytest.raises(InstallError) as err:
        installed.new_staging(tree, {"package.json": b"{}"})
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"bot: state/{name} is a symbolic link"), message
    assert sorted(os.listdir(outside)) == [installed.MARKER, "keep"]
    assert (outside / "keep").read_text() == "k"
    assert sorted(os.listdir(state)) == [name] and (state / name).is_symlink()


def test_a_planted_file_or_fifo_refuses_the_install(tmp_path: Path, tree_of: Trees) -> None:
    (tmp_path / "installed").write_text("x")
    os.mkfifo(tmp_path / ".installed-old")
    with pytest.raises(InstallError, match="installed is a regular file"):
        installed.new_staging(tree_of(tmp_path), {"package.json": b"{}"})
    (tmp_path / "installed").unlink()
    with pytest.raises(InstallError, match=r"\.installed-old is a (fifo|special file)"):
        installed.new_staging(tree_of(tmp_path), {"package.json": b"{}"})


def test_a_link_npm_left_as_the_marker_is_not_written_through(
    tmp_path: Path, tree_of: Trees
) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text("keep")
    state = tmp_path / "state"
    state.mkdir()
    tree = tree_of(state)
    staging = Path(installed.new_staging(tree, {"package.json": b"{}"}))
    os.symlink(outside, staging / installed.MARKER)
    with pytest.raises(InstallError):
        installed.swap_in(tree, "d", "c")
    assert outside.read_text() == "keep"
    assert not (state / "installed").exists()


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
