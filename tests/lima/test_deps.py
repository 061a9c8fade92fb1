"""Declared dependencies on Lima (#24), against the stand-in VM: the
install step runs after the egress and before the gateway, reads the same
marker as Docker's in the VM's `state/installed/` (an unchanged approved
list starts without running npm), and a failed install fails the start in
one line with its output kept for `cftui logs BOT installer`, the previous
install kept and no staging left.

The stand-in VM has no npm (its provisioning skips Node: no registry is
reachable from it), so a successful npm install in the VM is not run
here; what fails is systemd-run finding no npm, run as the gateway's user.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess

import pytest

from cftui.deps import declared, install_log
from cftui.errors import CftuiError
from cftui.progress import ProgressEvent
from cftui.runtime.lima.plan import unix_user
from tests.fakes.npm_registry import manifest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BOT = "lbot"
STATE = f"/srv/clawfactory/bots/{BOT}/state"
SAVE = f"workspace/{BOT}_save"


def _git(cwd, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        check=True,
        capture_output=True,
    )


def _commit(lima_stack, text: str) -> None:
    code = lima_stack.home.code_dir(BOT)
    (code / SAVE).mkdir(parents=True, exist_ok=True)
    (code / SAVE / "package.json").write_text(text)
    _git(code, "add", "-f", f"{SAVE}/package.json")
    _git(code, "commit", "-q", "-m", "declared dependencies")


def _as_gateway(lima_stack, script: str) -> str:
    user = unix_user("gateway", BOT)
    return lima_stack.vm_sh(f"runuser -u {user} -- sh -c {shlex.quote(script)}").stdout


def _start(lima_stack) -> list[ProgressEvent]:
    said: list[ProgressEvent] = []

    async def go() -> None:
        rt = lima_stack.runtime()
        try:
            await rt.down(lima_stack.bot)
            await rt.up(lima_stack.bot, said.append)
        finally:
            await rt.aclose()

    asyncio.run(go())
    return said


def test_an_unchanged_list_starts_without_npm_through_the_same_marker(lima_stack) -> None:
    _commit(lima_stack, manifest(**{"left-pad": "1.3.0"}))
    deps = declared.approved_deps(lima_stack.home.code_dir(BOT), BOT)
    marker = json.dumps({"digest": deps.digest(), "commit": deps.commit})
    _as_gateway(
        lima_stack,
        f"mkdir -p {STATE}/installed/node_modules/left-pad && "
        f"printf %s {shlex.quote(marker)} > {STATE}/installed/.cftui-deps.json",
    )
    said = _start(lima_stack)
    assert any(e.message == f"{BOT}: dependencies unchanged" for e in said), said
    assert lima_stack.vm_sh(f"systemctl is-active cf-gateway@{BOT}").stdout.strip() == "active"
    assert install_log.read(lima_stack.home, BOT, None) == []  # npm never ran


def test_a_failed_install_fails_the_start_in_one_line_and_keeps_the_last(lima_stack) -> None:
    _commit(lima_stack, manifest(**{"left-pad": "^1.3.0"}))
    with pytest.raises(CftuiError) as err:
        _start(lima_stack)
    reason = str(err.value)
    assert "\n" not in reason and "installing its dependencies failed" in reason, reason
    assert "npm" in reason and f"cftui logs {BOT} installer" in reason, reason
    # The previous install stands, nothing staged is left, the gateway is down.
    assert _as_gateway(lima_stack, f"ls -A {STATE}/installed").split() == [
        ".cftui-deps.json",
        "node_modules",
    ]
    assert lima_stack.vm_sh(f"test -e {STATE}/.installed-new", check=False).returncode == 1
    gw = lima_stack.vm_sh(f"systemctl is-active cf-gateway@{BOT}", check=False).stdout.strip()
    assert gw != "active"
    kept = [t for _, t in install_log.read(lima_stack.home, BOT, None)]
    assert kept[0].startswith("cftui: npm install of ") and ": exit 0" not in kept[0], kept
    assert any("npm" in line for line in kept[1:]), kept


def test_a_link_planted_in_state_refuses_the_install_in_one_line(lima_stack) -> None:
    """The steps are Docker's (`installed.ShellState`): `state/.installed-new
    -> /etc`, planted by the gateway's user, fails the start in one line and
    the link is neither followed nor replaced."""
    _commit(lima_stack, manifest(**{"left-pad": "~1.3.0"}))
    etc = lima_stack.vm_sh("ls -A /etc").stdout
    _as_gateway(lima_stack, f"ln -s /etc {STATE}/.installed-new")
    try:
        with pytest.raises(CftuiError) as err:
            _start(lima_stack)
        reason = str(err.value)
        assert "\n" not in reason, reason
        assert "state/.installed-new is a symbolic link" in reason and "refused" in reason, reason
        assert _as_gateway(lima_stack, f"readlink {STATE}/.installed-new").strip() == "/etc"
        assert lima_stack.vm_sh("ls -A /etc").stdout == etc
    finally:
        _as_gateway(lima_stack, f"rm -f {STATE}/.installed-new")
