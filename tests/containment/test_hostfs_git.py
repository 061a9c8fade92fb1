"""`code/.git` is the operator's: the agent can neither replace it from inside
its gateway nor make a host-side git run what it planted (a `.git` of its
own with `core.fsmonitor`, hooks), and cftui never tells the operator to
mark the tree `safe.directory`."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from cftui import update
from cftui.botinit import init_bot
from cftui.errors import CftuiError
from cftui.fleet import FleetHome
from cftui.runtime.docker.runtime import DockerRuntime

BOT = "gitbot"
GATEWAY_UID = 70_000  # docker_spec.GATEWAY_UID, spelt out so the old code runs these too


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def bot(home: FleetHome, tmp_path: Path) -> str:
    """A bot cloned from an upstream, with an upstream branch to update from."""
    src = tmp_path / "upstream"
    src.mkdir()
    _git(src, "init", "-q", "-b", "main")
    (src / "Dockerfile").write_text("FROM scratch\n")
    _git(src, "add", ".")
    _git(src, "-c", "user.name=t", "-c", "user.email=t@x.invalid", "commit", "-q", "-m", "one")
    init_bot(home, BOT, code=str(src))
    return BOT


@pytest.fixture
def operator_took_gits_advice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's global git config marks every directory safe, as git's
    own message (which the old code relayed) told them to."""
    operator_home = tmp_path / "operator-home"
    operator_home.mkdir()
    (operator_home / ".gitconfig").write_text("[safe]\n\tdirectory = *\n")
    monkeypatch.setenv("HOME", str(operator_home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)


def _plant(code: Path, marker: Path, owner: int | None) -> None:
    """What the agent does from inside: move the real `.git` aside, put a
    copy of its own in place that runs a program on any git status."""
    os.rename(code / ".git", code / ".git-orig")
    shutil.copytree(code / ".git-orig", code / ".git", symlinks=True)
    evil = code / "evil.sh"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    evil.chmod(0o755)
    hooks = code / "evil-hooks"
    hooks.mkdir()
    for hook in ("post-index-change", "post-merge", "post-checkout", "reference-transaction"):
        shutil.copy(evil, hooks / hook)
    with (code / ".git" / "config").open("a") as f:
        f.write(f"[core]\n\tfsmonitor = {evil}\n\thooksPath = {hooks}\n")
    if owner is not None:
        for dirpath, dirnames, filenames in os.walk(code):
            for name in (*dirnames, *filenames):
                os.lchown(os.path.join(dirpath, name), owner, owner)


@pytest.mark.skipif(os.geteuid() != 0, reason="plays a gateway whose uid is not the operator's")
def test_update_refuses_a_gitdir_planted_by_the_gateway(
    home: FleetHome, bot: str, tmp_path: Path, operator_took_gits_advice: None
) -> None:
    code = home.code_dir(bot)
    marker = tmp_path / "fsmonitor-ran"
    _plant(code, marker, owner=GATEWAY_UID)
    with pytest.raises(CftuiError) as info:
        update.check_worktree(home, bot, force=True)
    message = str(info.value)
    assert not marker.exists(), "host git ran the agent's core.fsmonitor"
    assert "\n" not in message
    assert "--add safe.directory" not in message
    assert str(code / ".git") in message


def test_host_git_runs_no_config_or_hook_of_the_repository(
    home: FleetHome, bot: str, tmp_path: Path
) -> None:
    """A gateway running as the operator's own uid (cftui not root) owns
    what it plants, so ownership cannot tell: git must still run nothing."""
    code = home.code_dir(bot)
    marker = tmp_path / "fsmonitor-ran"
    _plant(code, marker, owner=None)
    (code / "Dockerfile").write_text("FROM scratch\n# changed\n")
    with contextlib.suppress(CftuiError):
        update.check_worktree(home, bot, force=True)
    with contextlib.suppress(CftuiError):
        update.uncommitted(code)
    assert not marker.exists(), "host git ran the repository's fsmonitor or hooks"


def test_start_refuses_a_missing_or_replaced_gitdir(home: FleetHome, bot: str) -> None:
    code = home.code_dir(bot)
    config = home.bot(bot)
    os.rename(code / ".git", code / ".git-orig")
    for planted in (None, "link", "file"):
        if planted == "link":
            (code / ".git").symlink_to(code / ".git-orig")
        elif planted == "file":
            (code / ".git").write_text("gitdir: /elsewhere\n")
        with pytest.raises(CftuiError) as info:
            DockerRuntime(home)._prepare_host(config)
        assert "\n" not in str(info.value)
        assert ".git" in str(info.value)
        with contextlib.suppress(FileNotFoundError):
            (code / ".git").unlink()


@pytest.mark.docker
def test_the_gateway_can_neither_rename_nor_write_code_git(
    home: FleetHome, bot: str, docker_client: object
) -> None:
    """The gateway's own mounts and user (docker_spec.gateway_spec) on a
    throwaway container: the agent tries to move `.git` aside, replace it
    and write into it."""
    from cftui.runtime.docker import spec as docker_spec
    from cftui.runtime.images import services

    runtime = DockerRuntime(home)
    config = home.bot(bot)
    runtime._prepare_host(config)  # the files as a start leaves them
    image = services.ensure_image(docker_client, "fake-llm")  # any image with a shell
    spec = docker_spec.gateway_spec(home, config, image, {})
    keep = {"/code", "/code/.git", "/state", "/code/workspace/memory"}
    host_config = {
        k: v for k, v in spec.host_config.items() if k not in ("restart_policy", "mounts")
    }
    host_config["mounts"] = [m for m in spec.host_config["mounts"] if m["Target"] in keep]
    api = docker_client.api  # type: ignore[attr-defined]
    name = f"cftest-gitmount-{uuid.uuid4().hex[:6]}"
    created = api.create_container(
        image=image,
        command=["sleep", "60"],
        name=name,
        user=spec.user,
        host_config=api.create_host_config(network_mode="none", **host_config),
        labels={"io.clawfactory.test": name},
    )
    before = sorted(os.listdir(home.code_dir(bot) / ".git"))
    try:
        api.start(created["Id"])
        deadline = time.monotonic() + 20
        while api.inspect_container(created["Id"])["State"]["Status"] != "running":
            assert time.monotonic() < deadline, "the container did not start"
            time.sleep(0.2)
        attempts = {
            "rename": "mv /code/.git /code/.git-x",
            "replace": "rm -rf /code/.git",
            "write config": "echo '[core] fsmonitor = /code/x' >> /code/.git/config",
            "add hook": "echo x > /code/.git/hooks/post-merge",
        }
        for what, line in attempts.items():
            run = api.exec_create(created["Id"], ["sh", "-c", line], user=spec.user)
            out = api.exec_start(run["Id"]).decode(errors="replace")
            code = api.exec_inspect(run["Id"])["ExitCode"]
            assert code != 0, f"the gateway could {what} /code/.git: {out}"
        # ... nor the rest of the approved tree (read-only since issue 17),
        # while its writable paths stay the gateway's to write.
        for line, ok in (("touch /code/ok", False), ("touch /code/workspace/memory/ok", True)):
            run = api.exec_create(created["Id"], ["sh", "-c", line], user=spec.user)
            api.exec_start(run["Id"])
            assert (api.exec_inspect(run["Id"])["ExitCode"] == 0) is ok, line
    finally:
        api.remove_container(created["Id"], force=True)
    gitdir = home.code_dir(bot) / ".git"
    assert gitdir.is_dir() and not gitdir.is_symlink()
    assert sorted(os.listdir(gitdir)) == before
    assert "fsmonitor" not in (gitdir / "config").read_text()
