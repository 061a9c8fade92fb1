"""The operator's commands on a Lima bot, against the stand-in VM: init,
start, status, the kill switch (cut first, then kill, then the VM), the lock,
unlock, snapshot, and `cftui --run`'s clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cftui import killswitch, lifecycle, locks
from cftui.errors import BotLocked
from cftui.fleet import FleetHome
from cftui.runtime import Runtimes
from cftui.securefs import atomic_write_private

from .conftest import DEMO_AGENT, FAKE_LLM_PORT, LimaStack, start_fake_llm

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def cli_stack(lima_env, shared_vm, tmp_path_factory):
    """A bot created by `cftui init ... --runtime lima`, in the shared VM."""
    root = tmp_path_factory.mktemp("clifleet") / "home"
    vm = shared_vm
    env = dict(os.environ, CLAWFACTORY_HOME=str(root))
    res = _cftui(env, "init", "kbot", "--runtime", "lima", "--code", str(DEMO_AGENT))
    assert res.returncode == 0, res.stderr
    home = FleetHome(root)
    with home.editing() as doc:
        doc["bots"]["kbot"]["lima"]["vm"] = vm
        doc["bots"]["kbot"]["limits"]["memory_mb"] = 512
        doc["bots"]["kbot"]["upstreams"] = {"anthropic": f"http://127.0.0.1:{FAKE_LLM_PORT}"}
    atomic_write_private(home.providers_env("kbot"), "ANTHROPIC_API_KEY=sk-ant-test\n")
    yield LimaStack(home, home.bot("kbot"), vm, lima_env), env


def _cftui(env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cftui", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _status(env: dict) -> dict:
    res = _cftui(env, "status", "kbot", "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_start_status_kill_lock_unlock_snapshot(cli_stack):
    stack, env = cli_stack
    started = _cftui(env, "start", "kbot")
    assert started.returncode == 0, started.stderr
    start_fake_llm(stack)
    st = _status(env)
    assert st["state"] == "running", st
    listed = _cftui(env, "list")
    assert "kbot" in listed.stdout and "lima" in listed.stdout and "running" in listed.stdout

    # The kill switch without the VM stop, to look at what it did inside.
    async def kill_keep_vm():
        runtimes = Runtimes(stack.home)
        runtimes.get("lima").stop_vm_on_kill = False
        try:
            return await killswitch.kill(stack.home, [stack.bot], runtimes)
        finally:
            await runtimes.aclose()

    result = asyncio.run(kill_keep_vm())
    report = result.reports[0]
    assert report.network_cut and report.gateway_killed and report.ok, report.summary()
    assert sorted(report.stopped) == ["egress", "front", "llm-proxy"]
    chain = stack.vm_sh("nft list chain inet clawfactory out-kbot").stdout
    assert chain.index("cf-killed") < chain.index("cf-contain")
    assert stack.vm_sh("systemctl is-active cf-gateway@kbot", check=False).stdout.strip() in (
        "inactive",
        "failed",
    )
    # Not even a start from inside the VM brings it back.
    again = stack.vm_sh("systemctl start cf-gateway@kbot", check=False)
    assert again.returncode != 0
    assert _status(env)["state"] == "locked"

    refused = _cftui(env, "start", "kbot")
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0 and "cftui unlock kbot" in refused.stderr

    assert _cftui(env, "unlock", "kbot").returncode == 0
    assert _cftui(env, "start", "kbot").returncode == 0
    assert _status(env)["state"] == "running"
    assert "cf-killed" not in stack.vm_sh("nft list chain inet clawfactory out-kbot").stdout

    # A snapshot pulls the VM's state first.
    stack.vm_sh(
        "for i in $(seq 150); do ls /srv/clawfactory/bots/kbot/state/memory/*.md && exit 0; "
        "sleep 0.2; done; exit 1"
    )
    snap = _cftui(env, "snapshot", "create", "kbot", "lima")
    assert snap.returncode == 0, snap.stderr
    archive = next(stack.home.snapshots_dir("kbot").glob("lima--*.tar.age"))
    listing = subprocess.run(
        f"age -d -i {stack.home.snapshot_key('kbot')} {archive} | tar -t",
        shell=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "memory/" in listing

    # A restore stops the gateway, swaps the state on the host, pushes it
    # into the VM (what was written since is gone) and restarts the gateway.
    stack.vm_sh("echo later > /srv/clawfactory/bots/kbot/state/after-snapshot.txt")
    restored = _cftui(env, "snapshot", "restore", "kbot", archive.name)
    assert restored.returncode == 0, restored.stderr
    assert "gateway restarted" in restored.stdout
    gone = stack.vm_sh("test -e /srv/clawfactory/bots/kbot/state/after-snapshot.txt", check=False)
    assert gone.returncode != 0
    stack.vm_sh("ls /srv/clawfactory/bots/kbot/state/memory/")
    assert _status(env)["state"] == "running"

    # The real kill switch, from the CLI: cut, kill, then the VM stopped.
    t0 = time.monotonic()
    killed = _cftui(env, "kill", "kbot")
    assert killed.returncode == 0, killed.stdout + killed.stderr
    assert "network cut, gateway killed" in killed.stdout and f"VM {stack.vm}" in killed.stdout
    assert time.monotonic() - t0 < 20
    rows = subprocess.run(
        [stack.env["CFTUI_LIMACTL"], "list", "--json"], capture_output=True, text=True
    ).stdout
    vm_row = next(json.loads(r) for r in rows.splitlines() if json.loads(r)["name"] == stack.vm)
    assert vm_row["status"] == "Stopped"
    st = _status(env)
    assert st["state"] == "locked"
    events = [json.loads(x) for x in stack.home.events_log.read_text().splitlines()]
    assert [e["action"] for e in events if e.get("action") in ("kill", "unlock")][-3:] == [
        "kill",
        "unlock",
        "kill",
    ]
    assert _cftui(env, "unlock", "kbot").returncode == 0


def test_run_boots_the_stopped_vm_and_stops_cleanly_on_sigterm(cli_stack):
    stack, env = cli_stack
    proc = subprocess.Popen(
        [sys.executable, "-m", "cftui", "--run", "kbot"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "up; Ctrl-C stops" in line:
                break
        assert any("up; Ctrl-C stops" in x for x in lines), "".join(lines) + proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped kbot: network cut, gateway killed" in out
    assert not locks.is_locked(stack.home, "kbot")


def test_a_kill_during_a_start_wins_in_the_vm(cli_stack):
    """The kill lands while the start pushes code/ into the VM: the start
    ends with the lock's error and no unit of the bot comes up."""
    stack, env = cli_stack

    async def start_and_kill():
        runtimes = Runtimes(stack.home)
        runtimes.get("lima").stop_vm_on_kill = False  # to look inside afterwards
        loop = asyncio.get_running_loop()
        kills: list[asyncio.Future] = []

        def kill_now() -> None:
            if not kills:
                kills.append(
                    asyncio.ensure_future(killswitch.kill(stack.home, [stack.bot], runtimes))
                )

        def progress(event) -> None:
            if "pushing code/" in event.message:
                loop.call_soon_threadsafe(kill_now)

        try:
            with pytest.raises(BotLocked, match="start cancelled: kbot is locked"):
                await lifecycle.start(stack.home, stack.bot, runtimes, progress)
            assert kills, "the start never reached its push"
            return await kills[0]
        finally:
            await runtimes.aclose()

    result = asyncio.run(start_and_kill())
    assert result.reports[0].cancelled == ["start"], result.reports[0].summary()
    # Both have ended: nothing of ours is under way that could still start a unit.
    for unit in ("gateway", "llm-proxy", "egress", "front"):
        state = stack.vm_sh(f"systemctl is-active cf-{unit}@kbot", check=False).stdout.strip()
        assert state in ("inactive", "failed"), (unit, state)
    assert _status(env)["state"] == "locked"
    assert _cftui(env, "unlock", "kbot").returncode == 0
