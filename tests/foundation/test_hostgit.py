"""The one host git (cftui.hostgit): no config, hook or environment but the
operator's repository's own, and only in a `.git` the operator owns."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cftui import hostgit


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "code"
    path.mkdir()
    hostgit.git(None, "init", "-q", "-b", "main", cwd=path)
    (path / "f.txt").write_text("one\n")
    hostgit.git(path, "add", "f.txt")
    hostgit.git(path, "-c", "user.name=t", "-c", "user.email=t@x.invalid", "commit", "-qm", "c")
    return path


def _evil(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "ran"
    script = tmp_path / "evil.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    script.chmod(0o755)
    return script, marker


def test_the_callers_git_environment_is_not_honoured(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script, marker = _evil(tmp_path)
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.fsmonitor")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", str(script))
    (repo / "f.txt").write_text("two\n")
    assert hostgit.git(repo, "status", "--porcelain") == " M f.txt"
    assert not marker.exists()


def test_the_repositorys_fsmonitor_and_hooks_do_not_run(repo: Path, tmp_path: Path) -> None:
    script, marker = _evil(tmp_path)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for hook in ("post-index-change", "pre-commit", "post-commit", "reference-transaction"):
        (hooks / hook).symlink_to(script)
    subprocess.run(["git", "-C", str(repo), "config", "core.fsmonitor", str(script)], check=True)
    subprocess.run(["git", "-C", str(repo), "config", "core.hooksPath", str(hooks)], check=True)
    (repo / "f.txt").write_text("two\n")
    hostgit.git(repo, "status", "--porcelain")
    hostgit.git(repo, "add", "f.txt")
    hostgit.git(repo, "-c", "user.name=t", "-c", "user.email=t@x.invalid", "commit", "-qm", "d")
    assert not marker.exists()


def test_a_linked_gitdir_is_refused(repo: Path, tmp_path: Path) -> None:
    os.rename(repo / ".git", tmp_path / "real-git")
    (repo / ".git").symlink_to(tmp_path / "real-git")
    with pytest.raises(hostgit.GitError, match=r"\.git is a symbolic link") as info:
        hostgit.git(repo, "status")
    assert "\n" not in str(info.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a .git owned by another uid")
def test_a_gitdir_owned_by_the_gateway_is_refused_without_safe_directory_advice(
    repo: Path,
) -> None:
    os.chown(repo / ".git", 70_000, 70_000)
    with pytest.raises(hostgit.GitError, match="owned by uid 70000") as info:
        hostgit.git(repo, "status")
    assert "git config --global --add safe.directory" not in str(info.value)
