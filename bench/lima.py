"""Benchmark of the Lima runtime against the stand-in VM (issue 9).

Ten demo-agent bots in one stand-in VM (a Docker container running systemd,
provisioned by lima/'s scripts), then:

- status of the 10 bots (40 units) through the runtime's one reused SSH
  connection, beside the naive way: a new SSH connection per command;
- audit latency: a record appended in the VM by the LLM proxy's user, until
  it is in the host's audit/<bot>/traffic.jsonl;
- the kill switch on all 10 bots at once (killswitch.kill): call until every
  gateway is dead and cut, beside ClawFactory's Lima kill, where the gateway
  dies only when `limactl stop` has stopped the VM (measured here as the
  VM-stop step of the same kill).

    .venv/bin/python bench/lima.py [--bots 10] [--samples 30]

Needs Docker and debootstrap (the stand-in image is built once and cached).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cftui import killswitch  # noqa: E402
from cftui.botinit import init_bot  # noqa: E402
from cftui.fleet import FleetHome  # noqa: E402
from cftui.runtime import Runtimes  # noqa: E402
from cftui.runtime.lima.plan import unit_name, unix_user  # noqa: E402
from cftui.runtime.lima.runtime import LimaRuntime  # noqa: E402
from cftui.runtime.lima.ssh import VMShell  # noqa: E402
from cftui.securefs import atomic_write_private  # noqa: E402

STANDIN = REPO / "tests" / "lima" / "standin"
DEMO = REPO / "cftui" / "templates" / "demo-agent"
FAKE_PORT = 18600


def standin_image() -> str:
    digest = hashlib.sha256((STANDIN / "build-image.sh").read_bytes()).hexdigest()[:12]
    tag = f"clawfactory/lima-standin:{digest}"
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode:
        print(f"building {tag} (debootstrap, about a minute)", flush=True)
        subprocess.run([str(STANDIN / "build-image.sh"), tag], check=True)
    return tag


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def main(n_bots: int, samples: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cf-bench-lima-"))
    os.environ.update(
        CFTUI_LIMACTL=str(STANDIN / "limactl"),
        CF_STANDIN_IMAGE=standin_image(),
        LIMA_HOME=str(tmp / "lima"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    vm = f"cfb{uuid.uuid4().hex[:6]}"
    home = FleetHome(tmp / "home")
    names = [f"b{i:02d}" for i in range(n_bots)]
    for name in names:
        init_bot(
            home,
            name,
            runtime="lima",
            code=str(DEMO),
            gateway="generic",
            upstreams={"anthropic": f"http://127.0.0.1:{FAKE_PORT}"},
        )
        with home.editing() as doc:
            doc["bots"][name]["lima"]["vm"] = vm
            doc["bots"][name]["limits"]["memory_mb"] = 256
        atomic_write_private(home.providers_env(name), "ANTHROPIC_API_KEY=bench-not-a-real-key\n")
    bots = [home.bot(n) for n in names]
    rt = LimaRuntime(home)
    try:
        t0 = time.monotonic()
        shell = await rt.ensure_vm(bots[0])
        await shell.run(
            f"systemd-run --unit=cf-bench-fake /opt/clawfactory/venv/bin/cf-fake-llm "
            f"--listen 127.0.0.1:{FAKE_PORT}"
        )
        for b in bots:
            await rt.up(b)
        print(f"{n_bots} bots up in VM {vm} in {time.monotonic() - t0:.1f} s", flush=True)

        # --- status -----------------------------------------------------
        rt2 = LimaRuntime(home)
        t = time.monotonic()
        st = await rt2.status(bots)
        cold = (time.monotonic() - t) * 1000
        assert all(s.state == "running" for s in st.values()), {k: s.state for k, s in st.items()}
        warm = []
        for _ in range(samples):
            t = time.monotonic()
            await rt2.status(bots)
            warm.append((time.monotonic() - t) * 1000)
        connects = rt2._shells[vm].connects
        await rt2.aclose()

        # The naive way: one SSH connection per command (one per unit).
        cfg = shell.ssh_config
        naive = []
        gate = asyncio.Semaphore(8)
        for _ in range(3):
            t = time.monotonic()

            async def one(unit: str) -> None:
                async with gate:  # sshd's MaxStartups refuses more at once
                    s = VMShell(vm, cfg)
                    try:
                        await s.run(f"systemctl is-active {unit}", check=False)
                    finally:
                        await s.close()

            await asyncio.gather(*(one(unit_name(svc, b.name)) for b in bots for svc in
                                   ("front", "gateway", "llm-proxy", "egress")))  # fmt: skip
            naive.append((time.monotonic() - t) * 1000)

        # --- audit latency -----------------------------------------------
        bot = bots[0]
        log = home.traffic_log(bot.name)
        await rt.follow_audit(bot)
        await asyncio.sleep(1.0)
        user = unix_user("llm-proxy", bot.name)
        lat = []
        for i in range(samples):
            marker = f"bench-{uuid.uuid4().hex}"
            py = (
                "import json,time;"
                f"open('/srv/clawfactory/audit/{bot.name}/llm/traffic.jsonl','a')"
                f".write(json.dumps({{'bench':'{marker}','t':time.time()}})+'\\n')"
            )
            await shell.run(f'runuser -u {user} -- python3 -c "{py}"')
            while True:
                text = log.read_bytes()[-4096:].decode(errors="replace")
                if marker in text:
                    line = next(x for x in text.splitlines() if marker in x)
                    lat.append((time.time() - json.loads(line)["t"]) * 1000)
                    break
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.1 + 0.01 * (i % 7))

        # --- kill ---------------------------------------------------------
        await rt.aclose()
        runtimes = Runtimes(home)
        t = time.monotonic()
        result = await killswitch.kill(home, bots, runtimes, lock=False, action="bench-kill")
        total = (time.monotonic() - t) * 1000
        lrt = runtimes.get("lima")
        timings = lrt.kill_timings
        missing = [b.name for b in bots if "dead" not in timings[b.name]]
        assert not missing, [r.summary() for r in result.reports]
        dead = [(timings[b.name]["dead"] - timings[b.name]["start"]) * 1000 for b in bots]
        vm_stops = [
            (tm["vm_stopped"] - tm["start"]) * 1000 for tm in timings.values() if "vm_stopped" in tm
        ]
        await runtimes.aclose()
        assert result.ok, [r.summary() for r in result.reports]
        assert all(r.network_cut and r.gateway_killed for r in result.reports)

        w50, w95 = statistics.median(warm), pct(warm, 95)
        l50, l95, lmax = statistics.median(lat), pct(lat, 95), max(lat)
        rows = [
            ("measure", "ours", "baseline", "target", "ours/target"),
            (
                f"status of {n_bots} bots, warm, median / p95",
                f"{w50:.0f} / {w95:.0f} ms ({connects} SSH conn.)",
                f"{statistics.median(naive):.0f} ms (conn. per command)",
                "≤ 200 ms",
                f"{w95 / 200:.2f}",
            ),
            (f"status of {n_bots} bots, cold (new runtime: first SSH connect)", f"{cold:.0f} ms", "—", "—", "—"),
            (
                "audit record in VM → host file, median / p95 / max",
                f"{l50:.0f} / {l95:.0f} / {lmax:.0f} ms",
                "—",
                "≤ 1000 ms",
                f"{lmax / 1000:.2f}",
            ),
            (
                f"kill {n_bots} bots → every gateway dead and cut (max)",
                f"{max(dead):.0f} ms",
                f"{max(vm_stops):.0f} ms (gateway dead at VM stop)" if vm_stops else "—",
                "≤ 1000 ms",
                f"{max(dead) / 1000:.2f}",
            ),
            (f"kill {n_bots} bots, whole call incl. VM stop", f"{total:.0f} ms", "—", "—", "—"),
        ]  # fmt: skip
        for r in rows:
            print(" | ".join(r))
    finally:
        await rt.aclose()
        subprocess.run([str(STANDIN / "limactl"), "delete", "--force", vm], capture_output=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bots", type=int, default=10)
    ap.add_argument("--samples", type=int, default=30)
    a = ap.parse_args()
    asyncio.run(main(a.bots, a.samples))
