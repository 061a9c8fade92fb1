"""The Lima runtime's OpenClaw wiring in the VM meets links the agent
planted in its state/: it reads nothing as root through them, and gives the
gateway nothing it could not read itself (the Docker side of the same leak:
tests/containment/test_hostfs_state.py)."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from cftui.errors import CftuiError
from cftui.runtime.lima_plan import unix_user

pytestmark = [pytest.mark.docker, pytest.mark.slow]

STATE = "/srv/clawfactory/bots/lbot/state"
SECRET = "sk-vm-root-only-secret"


def _plant(lima_stack, path: str, target: str) -> None:
    """A root-only JSON file in the VM, and the agent's link to it at `path`."""
    user = unix_user("gateway", "lbot")
    loot = {
        "models": {"providers": {"mine": {"apiKey": SECRET}}},
        "providers": {"anthropic": {"baseUrl": "https://x"}, "mine": {"apiKey": SECRET}},
    }
    lima_stack.vm_sh(
        f"install -d -m 0700 /root/hostfs && printf %s {shlex.quote(json.dumps(loot))} "
        f"> {target} && chmod 0600 {target} && rm -f {path} "
        f"&& runuser -u {user} -- mkdir -p $(dirname {path}) "
        f"&& runuser -u {user} -- ln -s {target} {path}"
    )


async def _wire(lima_stack) -> CftuiError | None:
    rt = lima_stack.runtime()
    try:
        shell = await rt._shell(lima_stack.vm)
        await rt._wire_openclaw(shell, lima_stack.bot, rt._plan(lima_stack.bot))
    except CftuiError as exc:
        return exc
    finally:
        await rt.aclose()
    return None


def _gateway_sees_no_secret(lima_stack) -> None:
    user = unix_user("gateway", "lbot")
    seen = lima_stack.vm_sh(
        f"runuser -u {user} -- sh -c 'find {STATE} -type f -exec cat {{}} + 2>/dev/null'",
        check=False,
    ).stdout
    assert SECRET not in seen


async def test_a_linked_openclaw_json_is_refused_not_read_as_root(lima_stack):
    _plant(lima_stack, f"{STATE}/openclaw.json", "/root/hostfs/config.json")
    try:
        err = await _wire(lima_stack)
        _gateway_sees_no_secret(lima_stack)
        assert err is not None and "openclaw.json" in str(err) and "\n" not in str(err)
    finally:
        lima_stack.vm_sh(f"rm -f {STATE}/openclaw.json", check=False)


async def test_a_linked_models_json_is_refused_not_read_as_root(lima_stack):
    _plant(lima_stack, f"{STATE}/agents/main/agent/models.json", "/root/hostfs/models.json")
    try:
        err = await _wire(lima_stack)
        _gateway_sees_no_secret(lima_stack)
        assert err is not None and "models.json" in str(err)
    finally:
        lima_stack.vm_sh(f"rm -rf {STATE}/agents {STATE}/openclaw.json", check=False)


async def test_regular_files_are_wired_and_stay_the_gateways(lima_stack):
    user = unix_user("gateway", "lbot")
    models = f"{STATE}/agents/main/agent/models.json"
    body = json.dumps({"providers": {"anthropic": {"baseUrl": "https://api.anthropic.com"}}})
    inner = (
        f"mkdir -p $(dirname {models}) && printf %s {shlex.quote(body)} > {models} "
        f"&& printf %s {{}} > {STATE}/openclaw.json"
    )
    lima_stack.vm_sh(f"runuser -u {user} -- sh -c {shlex.quote(inner)}")
    try:
        assert await _wire(lima_stack) is None
        for path in (f"{STATE}/openclaw.json", models):
            assert lima_stack.vm_sh(f"stat -c '%U %a %F' {path}").stdout.split() == [
                user,
                "600",
                "regular",
                "file",
            ]
        wired = json.loads(lima_stack.vm_sh(f"cat {models}").stdout)
        assert wired["providers"]["anthropic"]["baseUrl"].startswith("http://127.0.0.1:")
        left = lima_stack.vm_sh(f"find {STATE} -name '*.cftui-tmp'").stdout
        assert left == ""
    finally:
        lima_stack.vm_sh(f"rm -rf {STATE}/agents {STATE}/openclaw.json", check=False)


HOST_SECRET = "sk-host-operator-only-secret"


def test_links_in_the_vms_state_are_never_read_through_on_the_host(lima_stack, cli, tmp_path):
    """The agent names host paths in links in its state/: a snapshot pulls
    state/ to the host (links stay links), a restore of it is refused, and
    neither the host copy, the archive nor the VM holds the linked bytes."""
    secret_dir = tmp_path / "operator"
    secret_dir.mkdir(mode=0o700)
    secret = secret_dir / "only-mine.txt"
    secret.write_text(HOST_SECRET)
    secret.chmod(0o600)
    user = unix_user("gateway", "lbot")
    links = {"leak-file": secret, "leak-dir": secret_dir, "memory-link": secret}
    inner = " && ".join(f"ln -sfn {t} {STATE}/{n}" for n, t in links.items())
    lima_stack.vm_sh(f"runuser -u {user} -- sh -c {shlex.quote(inner)}")
    home = lima_stack.home
    try:
        made = cli("snapshot", "create", "lbot", "links")
        assert made.code == 0, made.err
        host_state = home.state_dir("lbot")
        for name in links:
            assert not (host_state / name).is_file() or (host_state / name).is_symlink()
        for path in host_state.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert HOST_SECRET not in path.read_text(errors="replace"), path
        archive = next(home.snapshots_dir("lbot").glob("links--*.tar.age"))
        stream = subprocess.run(
            ["age", "-d", "-i", str(home.snapshot_key("lbot")), str(archive)],
            capture_output=True,
            check=True,
        ).stdout
        assert HOST_SECRET.encode() not in stream
        # Restoring that snapshot is refused, in one line, the state unchanged.
        restored = cli("snapshot", "restore", "lbot", archive.name)
        assert restored.code == 1, restored.err
        last = restored.err.strip().splitlines()[-1]
        assert "points to the absolute path" in last and "unchanged" in last, last
        found = lima_stack.vm_sh(f"grep -rl {HOST_SECRET} {STATE}", check=False)
        assert found.returncode == 1 and found.stdout == "", found.stdout
    finally:
        names = " ".join(f"{STATE}/{n}" for n in links)
        lima_stack.vm_sh(f"rm -f {names}", check=False)
