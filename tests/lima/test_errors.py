"""Clear one-line errors of the Lima runtime: limactl missing (with the
install hint), a VM that fails to boot, SSH unreachable, a provisioning
step that fails (its output shown), a bad value refused before any change."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from cftui.errors import FleetError, RuntimeOperationError, RuntimeUnavailable
from cftui.runtime.lima.runtime import LimaRuntime
from cftui.runtime.lima.ssh import VMShell

from .conftest import make_lima_home

REPO = Path(__file__).parents[2]


def _one_line(text: str) -> str:
    assert "\n" not in text.strip() and "Traceback" not in text
    return text


async def test_limactl_missing_names_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("CFTUI_LIMACTL", str(tmp_path / "no-limactl"))
    rt = LimaRuntime(make_lima_home(tmp_path / "h", "nolima", "vmx"))
    with pytest.raises(RuntimeUnavailable, match=r"limactl not found.*brew install lima") as exc:
        await rt.check()
    _one_line(str(exc.value))


def test_cli_status_of_a_lima_bot_without_limactl_is_one_line(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("CFTUI_LIMACTL", str(tmp_path / "no-limactl"))
    home = make_lima_home(tmp_path / "h", "nolima", "vmx")
    res = cli("--home", str(home.root), "status", "nolima")
    assert "limactl not found" in res.out + res.err
    assert "Traceback" not in res.out + res.err


async def test_ssh_unreachable_is_reported_with_what_to_try(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "ssh.config"
    cfg.write_text(f"Host lima-x\n  User op\n  Hostname 127.0.0.1\n  Port {port}\n")
    shell = VMShell("x", cfg)
    with pytest.raises(RuntimeUnavailable, match=r"VM x: SSH unreachable.*limactl shell x") as exc:
        await shell.run("true")
    _one_line(str(exc.value))


@pytest.mark.docker
async def test_up_refuses_an_unusable_allow_pattern_before_touching_the_vm(tmp_path, lima_env):
    home = make_lima_home(tmp_path / "h", "badallow", "never-created")
    with home.editing() as doc:
        doc["bots"]["badallow"]["egress_allow"] = ["a b"]
    rt = LimaRuntime(home)
    bot = home.bot("badallow")
    # The VM does not exist: nothing may have created it.
    with pytest.raises(FleetError, match="egress_allow: bad egress rule") as exc:
        await rt.up(bot)
    _one_line(str(exc.value))
    assert await rt.limactl.instance("never-created") is None
    await rt.aclose()


@pytest.mark.docker
async def test_vm_that_fails_to_boot(tmp_path, lima_env, monkeypatch):
    monkeypatch.setenv("CF_STANDIN_IMAGE", "clawfactory/no-such-image:none")
    home = make_lima_home(tmp_path / "h", "noboot", "cfe-noboot")
    rt = LimaRuntime(home)
    try:
        with pytest.raises(RuntimeOperationError, match="VM cfe-noboot failed to boot") as exc:
            await rt.up(home.bot("noboot"))
        _one_line(str(exc.value))
    finally:
        await rt.aclose()
        await rt.limactl.run("delete", "--force", "cfe-noboot")


@pytest.mark.docker
async def test_failing_provisioning_step_shows_its_output(tmp_path, lima_env, monkeypatch):
    lima = tmp_path / "lima"
    shutil.copytree(REPO / "lima", lima)
    system = lima / "provision" / "system.sh"
    system.write_text('echo "apt: unable to locate package nodejs-99" >&2\nexit 3\n')
    monkeypatch.setenv("CFTUI_LIMA_DIR", str(lima))
    home = make_lima_home(tmp_path / "h", "badprov", "cfe-badprov")
    rt = LimaRuntime(home)
    try:
        with pytest.raises(RuntimeOperationError) as exc:
            await rt.up(home.bot("badprov"))
        msg = _one_line(str(exc.value))
        assert "provisioning" in msg and "unable to locate package nodejs-99" in msg
    finally:
        await rt.aclose()
        await rt.limactl.run("delete", "--force", "cfe-badprov")
    assert os.environ.get("CFTUI_LIMA_DIR") == str(lima)
