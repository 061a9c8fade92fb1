"""The Lima runtime against the stand-in VM: provisioning, the units, SSH,
rsync both ways, logs, events, audit sync, secrets and nftables containment.
One VM with one demo-agent bot serves the whole module (conftest.lima_stack).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from cftui.runtime.lima.plan import ports_for, unix_user
from cftui.runtime.status import RUNNING, STOPPED

pytestmark = pytest.mark.docker


async def test_up_provisions_every_service_as_a_running_unit(lima_stack):
    rt = lima_stack.runtime()
    try:
        status = (await rt.status([lima_stack.bot]))["lbot"]
    finally:
        await rt.aclose()
    assert {s: st.state for s, st in status.services.items()} == {
        "front": RUNNING,
        "gateway": RUNNING,
        "llm-proxy": RUNNING,
        "egress": RUNNING,
    }
    assert status.uptime_seconds() is not None
    # Each service runs as its own system user, the gateway sandboxed.
    ps = lima_stack.vm_sh("ps -eo user:32,args --no-headers").stdout
    assert f"{unix_user('gateway', 'lbot')} " in ps and "/code/agent.py" in ps
    assert f"{unix_user('llm-proxy', 'lbot')} " in ps
    assert f"{unix_user('egress', 'lbot')} " in ps
    props = lima_stack.vm_sh(
        "systemctl show cf-gateway@lbot -p ProtectSystem,ProtectHome,PrivateTmp,"
        "NoNewPrivileges,CapabilityBoundingSet,MemoryMax,TasksMax,ReadWritePaths"
    ).stdout
    assert "ProtectSystem=strict" in props
    assert "ProtectHome=yes" in props
    assert "PrivateTmp=yes" in props
    assert "NoNewPrivileges=yes" in props
    assert "CapabilityBoundingSet=\n" in props
    assert f"MemoryMax={512 * 1024 * 1024}" in props
    rw = "/state /proposals /code/workspace/lbot_save /code/workspace/memory"
    assert f"ReadWritePaths={rw}\n" in props


async def test_units_pass_systemd_analyze_verify_inside_the_vm(lima_stack):
    units = " ".join(f"cf-{s}@lbot.service" for s in ("gateway", "llm-proxy", "egress", "front"))
    res = lima_stack.vm_sh(f"systemd-analyze verify {units}", check=False)
    assert res.returncode == 0, res.stderr
    assert "cf-" not in res.stderr, res.stderr


async def test_vm_created_with_qemu_after_vz_refused_and_ssh_config_read(lima_stack):
    out = subprocess.run(
        [lima_stack.env["CFTUI_LIMACTL"], "list", "--json"], capture_output=True, text=True
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    row = next(r for r in rows if r["name"] == lima_stack.vm)
    assert row["status"] == "Running" and row["vmType"] == "qemu"
    assert row["sshLocalPort"] > 0


async def test_status_of_many_calls_reuses_one_ssh_connection(lima_stack):
    rt = lima_stack.runtime()
    try:
        for _ in range(5):
            await rt.status([lima_stack.bot])
        assert rt._shells[lima_stack.vm].connects == 1
    finally:
        await rt.aclose()


async def test_code_is_pushed_owned_by_the_gateway_user(lima_stack):
    owner = lima_stack.vm_sh(
        "stat -c '%U %a' /srv/clawfactory/bots/lbot/code/lima-test-marker.txt"
    ).stdout.split()
    assert owner == [unix_user("gateway", "lbot"), "600"]


async def test_state_pulled_to_host_and_pushed_back(lima_stack):
    home, bot = lima_stack.home, lima_stack.bot
    # The demo agent writes its memory into /state as it runs.
    lima_stack.vm_sh(
        "for i in $(seq 150); do ls /srv/clawfactory/bots/lbot/state/memory/*.md && exit 0; "
        "sleep 0.2; done; exit 1"
    )
    rt = lima_stack.runtime()
    try:
        await rt.pull_state(bot)
        memory = list((home.state_dir("lbot") / "memory").glob("*.md"))
        assert memory, "the agent's memory did not come back to the host"
        (home.state_dir("lbot") / "restored.txt").write_text("from a snapshot\n")
        await rt.push_state(bot)
    finally:
        await rt.aclose()
    got = lima_stack.vm_sh("cat /srv/clawfactory/bots/lbot/state/restored.txt").stdout
    assert got == "from a snapshot\n"


async def test_secrets_are_0600_owned_by_their_reader_and_never_on_a_command_line(lima_stack):
    listing = lima_stack.vm_sh("stat -c '%n %U %a' /srv/clawfactory/secrets/lbot/*").stdout
    rows = {line.split()[0].rsplit("/", 1)[1]: line.split()[1:] for line in listing.splitlines()}
    assert rows["providers.env"] == [unix_user("llm-proxy", "lbot"), "600"]
    assert rows["gateway.env"] == ["root", "600"]
    assert rows["llm.env"] == ["root", "600"]
    token = next(
        line.split("=", 1)[1]
        for line in lima_stack.home.gateway_env("lbot").read_text().splitlines()
        if line.startswith("CF_PROXY_TOKEN=")
    )
    assert token not in lima_stack.vm_sh("ps -eo args --no-headers").stdout
    assert token not in lima_stack.vm_sh("journalctl --no-pager -o cat").stdout


async def test_gateway_cannot_read_secrets_or_audit_but_writes_state(lima_stack):
    """Looked at from inside the running gateway's own sandbox (its mount
    namespace, its user)."""
    pid = lima_stack.vm_sh("systemctl show -p MainPID --value cf-gateway@lbot").stdout.strip()
    user = unix_user("gateway", "lbot")

    def as_gateway(cmd: str) -> subprocess.CompletedProcess:
        return lima_stack.vm_sh(
            f"nsenter -t {pid} -m -S $(id -u {user}) -G $(id -g {user}) sh -c '{cmd}'",
            check=False,
        )

    assert as_gateway("id -un").stdout.strip() == user
    for path in (
        "/srv/clawfactory/secrets/lbot/providers.env",
        "/srv/clawfactory/secrets/lbot/gateway.env",
        "/srv/clawfactory/audit/lbot/llm/traffic.jsonl",
        "/etc/clawfactory/bots/lbot/bot.env",
    ):
        denied = as_gateway(f"cat {path}")
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, path
    assert as_gateway("touch /state/w").returncode == 0
    for path in ("/usr/w", "/code/w"):
        ro = as_gateway(f"touch {path}")
        assert ro.returncode != 0 and "Read-only file system" in ro.stderr, path


def _connect_as(stack, user: str, host: str, port: int) -> bool:
    """Whether `user` opens a TCP connection to host:port from inside the VM."""
    py = (
        "import socket,sys\n"
        "try:\n"
        f" socket.create_connection(({host!r},{port}),2).close(); print('open')\n"
        "except OSError as e:\n"
        " print('blocked', e)\n"
    )
    out = stack.vm_sh(f'runuser -u {user} -- python3 -c "{py}"', check=False).stdout
    return out.startswith("open")


async def test_gateway_user_reaches_only_its_proxies(lima_stack, docker_client):
    """nftables owner match: the gateway's user reaches its LLM proxy and
    egress proxy on loopback, nothing else, while root reaches everything."""
    ports = ports_for(lima_stack.bot)
    gw = unix_user("gateway", "lbot")
    # A server of the test's own inside the VM, and one in a container on a
    # network of the test's own, joined to the VM.
    lima_stack.vm_sh(
        "systemctl is-active -q cf-test-http || systemd-run --unit=cf-test-http "
        "python3 -m http.server --bind 127.0.0.1 18650"
    )
    net = docker_client.networks.create(f"cf-limatest-{uuid.uuid4().hex[:6]}")
    vm_container = next(
        c
        for c in docker_client.containers.list(filters={"label": "io.clawfactory.standin=1"})
        if c.name.endswith("-" + lima_stack.vm)
    )
    server = docker_client.containers.run(
        lima_stack.env["CF_STANDIN_IMAGE"],
        ["python3", "-m", "http.server", "8000"],
        detach=True,
        name=f"cf-limatest-srv-{uuid.uuid4().hex[:6]}",
        network=net.name,
        labels={"io.clawfactory.test": "lima"},
    )
    try:
        net.connect(vm_container)
        server.reload()
        ip = server.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
        for _ in range(50):
            if _connect_as(lima_stack, "root", ip, 8000):
                break
            await asyncio.sleep(0.2)
        before = lima_stack.vm_sh("nft -j list chain inet clawfactory out-lbot").stdout
        assert _connect_as(lima_stack, gw, "127.0.0.1", ports.llm)
        assert _connect_as(lima_stack, gw, "127.0.0.1", ports.egress)
        assert not _connect_as(lima_stack, gw, "127.0.0.1", 18650)
        assert not _connect_as(lima_stack, gw, ip, 8000)
        assert not _connect_as(lima_stack, gw, "127.0.0.1", 22)
        assert _connect_as(lima_stack, "root", "127.0.0.1", 18650)
        assert _connect_as(lima_stack, "root", ip, 8000)
        after = lima_stack.vm_sh("nft -j list chain inet clawfactory out-lbot").stdout
        assert _drop_count(after) > _drop_count(before)
    finally:
        server.remove(force=True)
        net.disconnect(vm_container, force=True)
        net.remove()


def _drop_count(nft_json: str) -> int:
    for item in json.loads(nft_json)["nftables"]:
        rule = item.get("rule")
        if rule and rule.get("comment") == "cf-contain":
            for expr in rule["expr"]:
                if "counter" in expr:
                    return expr["counter"]["packets"]
    raise AssertionError("no counted drop rule in the bot's chain")


async def test_llm_calls_land_in_the_hosts_traffic_log(lima_stack):
    rt = lima_stack.runtime()
    log = lima_stack.home.traffic_log("lbot")
    try:
        await rt.follow_audit(lima_stack.bot)
        deadline = time.monotonic() + 30
        records: list[dict] = []
        while time.monotonic() < deadline:
            if log.exists():
                records = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
                if any(r.get("status") == 200 for r in records):
                    break
            await asyncio.sleep(0.2)
    finally:
        await rt.aclose()
    ok = [r for r in records if r.get("status") == 200]
    assert ok, f"no successful call in {log}: {records[-3:]}"
    assert ok[0]["bot"] == "lbot"
    assert oct(log.stat().st_mode & 0o777) == "0o600"


async def test_audit_record_reaches_host_as_it_is_written(lima_stack):
    """Followed, not copied at the end (how fast is bench/hosts.py's and
    bench/lima.py's to say: a bound here failed under load, at 1.07 s)."""
    rt = lima_stack.runtime()
    marker = uuid.uuid4().hex
    enc = lima_stack.home.capture_log("lbot")
    try:
        await rt.follow_audit(lima_stack.bot)
        await asyncio.sleep(1.0)  # the followers' tail -F are attached
        user = unix_user("egress", "lbot")
        lima_stack.vm_sh(
            f'runuser -u {user} -- sh -c \'printf "%s\\n" '
            f'"{{\\"k\\": \\"{marker}\\", \\"t\\": \\"x\\"}}" '
            f">> /srv/clawfactory/audit/lbot/egress/traffic.enc.jsonl'"
        )
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            if enc.exists() and marker in enc.read_text():
                break
            await asyncio.sleep(0.02)
    finally:
        await rt.aclose()
    assert marker in enc.read_text(), "the record never reached the host's copy while followed"


async def test_logs_tail_then_follow(lima_stack):
    rt = lima_stack.runtime()
    try:
        lines = [ln async for ln in rt.logs(lima_stack.bot, "gateway", follow=False, tail=50)]
        assert any("demo agent" in ln.text for ln in lines)
        assert all(ln.service == "gateway" and ln.ts is not None for ln in lines)
        newest = max(ln.ts for ln in lines)

        async def next_line():
            async for ln in rt.logs(lima_stack.bot, "gateway", follow=True, tail=0):
                return ln
            return None

        # The demo agent logs one line per action, every DEMO_INTERVAL_S (5 s).
        followed = await asyncio.wait_for(next_line(), 15)
        assert followed is not None and followed.ts >= newest
    finally:
        await rt.aclose()


async def test_events_report_gateway_stop_and_start(lima_stack):
    rt = lima_stack.runtime()
    seen: list[tuple[str, str]] = []
    try:
        agen = rt.events([lima_stack.bot])

        async def until(state: str) -> None:
            async for ch in agen:
                seen.append((ch.service, ch.state))
                if ch.service == "gateway" and ch.state == state:
                    return

        waiter = asyncio.create_task(until(STOPPED))
        await asyncio.sleep(3)  # the journal follower is attached
        await rt.stop_gateway(lima_stack.bot)
        await asyncio.wait_for(waiter, 30)
        await rt.start_gateway(lima_stack.bot)
        await asyncio.wait_for(until(RUNNING), 30)
        await agen.aclose()
    finally:
        await rt.aclose()
    assert ("gateway", STOPPED) in seen and ("gateway", RUNNING) in seen
    assert await _gateway_running(lima_stack)


async def _gateway_running(stack) -> bool:
    rt = stack.runtime()
    try:
        return await rt.gateway_running(stack.bot)
    finally:
        await rt.aclose()


async def test_capture_toggle_reaches_the_vms_egress_proxy_and_is_confirmed(lima_stack):
    """`cftui capture on` writes the control file on the host; the runtime
    carries it into the VM and the proxy's stats back, so the toggle is
    confirmed as on Docker."""
    from cftui import egress_control as capture

    rt = lima_stack.runtime()
    try:
        await rt.follow_audit(lima_stack.bot)
        await asyncio.sleep(1.0)
        on = await asyncio.to_thread(capture.set_capture, lima_stack.home, "lbot", True)
        assert on.confirmed is True
        vm_control = lima_stack.vm_sh(
            "cat /srv/clawfactory/audit/lbot/egress/egress.control.json"
        ).stdout
        assert json.loads(vm_control)["capture"] is True
        off = await asyncio.to_thread(capture.set_capture, lima_stack.home, "lbot", False)
        assert off.confirmed is True
    finally:
        await rt.aclose()


async def test_tui_fleet_row_shows_the_lima_bot_running(lima_stack):
    from cftui.runtime import Runtimes
    from cftui.tui.app import make_app
    from cftui.tui.fleet_table import FleetTable

    runtimes = Runtimes(lima_stack.home)
    app = make_app(lima_stack.home, runtimes)

    def cell(column: str) -> str:
        try:
            return str(app.screen.query_one(FleetTable).get_cell("lbot", column))
        except Exception:
            return ""

    try:
        async with app.run_test(size=(120, 36)) as pilot:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not (
                "running" in cell("state") and cell("gateway") == "● up"
            ):
                await pilot.pause(0.1)
            assert "running" in cell("state"), cell("state")
            assert cell("gateway") == "● up"
    finally:
        await runtimes.aclose()


def _cftui_shell(lima_stack, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """`cftui shell ARGS` as the operator runs it, on the module's home."""
    env = {**os.environ, "CLAWFACTORY_HOME": str(lima_stack.home.root)}
    return subprocess.run(
        [sys.executable, "-m", "cftui", "shell", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize("service", ["gateway", "llm-proxy"])
async def test_shell_runs_as_the_units_user_in_the_vm_and_passes_its_status(lima_stack, service):
    # The runtime's own argv (`limactl shell --workdir / VM sudo -u USER -H
    # -- /bin/sh`) through the stand-in limactl, into the VM.
    proc = _cftui_shell(
        lima_stack, "lbot", service, stdin='id -un; echo "home=$HOME cwd=$(pwd)"; exit 3\n'
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.splitlines() == [unix_user(service, "lbot"), "home=/nonexistent cwd=/"]


async def test_shell_refuses_an_unknown_service_in_one_line(lima_stack):
    proc = _cftui_shell(lima_stack, "lbot", "nosvc", stdin="id -un\n")
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "unknown service 'nosvc'" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_the_running_gateway_holds_no_privilege_and_has_its_limits(lima_stack):
    """The escape suite's checks that apply in a VM, read off the running
    gateway process: no capability in any set, no new privileges, seccomp
    on, and the memory and task limits its drop-in sets in force."""
    pid = lima_stack.vm_sh("systemctl show -p MainPID --value cf-gateway@lbot").stdout.strip()
    assert pid and pid != "0"
    status = dict(
        line.split(":", 1)
        for line in lima_stack.vm_sh(f"cat /proc/{pid}/status").stdout.splitlines()
        if ":" in line
    )
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap].strip(), 16) == 0, (cap, status[cap])
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"

    def prop(name: str) -> str:
        return lima_stack.vm_sh(f"systemctl show -p {name} --value cf-gateway@lbot").stdout.strip()

    memory_max, tasks_max, user = prop("MemoryMax"), prop("TasksMax"), prop("User")
    assert memory_max.isdigit() and int(memory_max) > 0, memory_max
    assert tasks_max.isdigit() and int(tasks_max) > 0, tasks_max
    assert user == unix_user("gateway", "lbot")
