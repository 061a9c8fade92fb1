"""Benchmark of bots on several Docker hosts (issue 21), on real second
engines in network namespaces reached over SSH (tests/hosts/testhost.py).

Three hosts, ten stand-in bots on each (a gateway container named and
labelled as the runtime names its own, made with the docker CLI on that
engine: starting bots there is not built yet). Timed in the same run:

- `status` of the 30 bots, warm: one `Runtimes` (one SSH link per host,
  reused) asked ROUNDS times; against the baseline, a connection per
  command (a fresh `Runtimes`, so three new SSH links, for every status);
- the kill switch on 10 bots spread over 3 hosts; against 10 bots on one host;
- a remote bot's LLM call reaching the operator: the time from a line
  appended to `audit/<bot>/traffic.jsonl` on its host to the line in the
  fleet home's mirror, and to its row in the TUI's traffic table (the real
  app, headless, open on that bot while the mirrors of all the fleet's
  remote bots run), median and p95, for a fleet of 1 remote bot, of 10 on
  one host, and of 30 on the 3 hosts (all mirrored at once: once, a line
  there never reached the mirror within a minute); against the 1-bot and
  10-bot fleets, and a local bot's line, appended to the fleet home's file
  itself, reaching the same table.

Ratios are printed beside the baselines. Needs root, `ip netns`, dockerd, sshd.

    .venv/bin/python bench/hosts.py [--rounds 10] [--audit-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cftui import killswitch
from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from cftui.hosts.layout import HostLayout
from cftui.lifecycle import fleet_status
from cftui.runtime import Runtimes
from cftui.runtime.docker.spec import LABEL_BOT, LABEL_SERVICE, container_name
from tests.hosts.testhost import TestHost

IMAGE = "clawfactory/base:bookworm"
DEMO = str(Path(__file__).resolve().parents[1] / "cftui/templates/demo-agent")


def docker(host: TestHost, *args: str) -> str:
    env = dict(os.environ, DOCKER_HOST=host.docker_host)
    return subprocess.run(
        ["docker", *args], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def stand_in(host: TestHost, bot: str) -> None:
    name = container_name(bot, "gateway")
    subprocess.run(["docker", "rm", "-f", name], capture_output=True,
                   env=dict(os.environ, DOCKER_HOST=host.docker_host))  # fmt: skip
    docker(host, "run", "-d", "--name", name, "--label", f"{LABEL_BOT}={bot}",
           "--label", f"{LABEL_SERVICE}=gateway", IMAGE, "sleep", "600")  # fmt: skip


async def timed_status(home: FleetHome, rounds: int, warm: bool) -> float:
    bots = list(home.bots().values())
    shared = Runtimes(home) if warm else None
    try:
        if shared is not None:
            await fleet_status(home, bots, shared)  # the links open once, untimed
        start = time.perf_counter()
        for _ in range(rounds):
            runtimes = shared or Runtimes(home)
            statuses, errors = await fleet_status(home, bots, runtimes)
            assert not errors, errors
            assert all(s.state != "unknown" for s in statuses.values())
            if shared is None:
                await runtimes.aclose()
        return (time.perf_counter() - start) / rounds
    finally:
        if shared is not None:
            await shared.aclose()


def timed_kill(home: FleetHome, names: list[str]) -> float:
    async def go() -> float:
        runtimes = Runtimes(home)
        try:
            await fleet_status(home, [home.bot(n) for n in names], runtimes)  # links warm
            start = time.perf_counter()
            result = await killswitch.kill(home, [home.bot(n) for n in names], runtimes)
            seconds = time.perf_counter() - start
            assert result.ok, [r.errors for r in result.reports]
            return seconds
        finally:
            await runtimes.aclose()

    try:
        return asyncio.run(go())
    finally:
        killswitch.unlock(home, names)


def _call(bot: str, n: int) -> tuple[str, bytes]:
    """One traffic.jsonl record as the LLM proxy writes it (an end line)."""
    call_id = f"bench-{bot}-{n:06d}"
    rec = {
        "v": 1, "id": call_id, "ts": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "bot": bot, "provider": "anthropic", "method": "POST", "path": "/v1/messages",
        "model": "claude-sonnet-4-5", "status": 200, "stream": False, "ttfb_ms": 120.0,
        "duration_ms": 900.0, "tokens_in": 1200, "tokens_out": 300, "cache_read": 0,
        "cache_write": 0, "req_bytes": 1400, "resp_bytes": 700,
        "request": {"messages": [{"role": "user", "content": "plan the next step " * 40}]},
        "response": {"text": "Here is the plan. " * 20, "stop_reason": "end_turn"},
        "error": None, "cost_usd": 0.0081,
    }  # fmt: skip
    return call_id, json.dumps(rec).encode() + b"\n"


def _has_id(path: Path, call_id: str) -> bool:
    try:
        with path.open("rb") as f:
            f.seek(max(path.stat().st_size - 8192, 0))
            return call_id.encode() in f.read()
    except FileNotFoundError:
        return False


async def _until(check, timeout: float = 30.0) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("not seen in time")
        await asyncio.sleep(0.002)
    return time.perf_counter()


def _median_p95(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[math.ceil(len(ordered) * 0.95) - 1]


async def timed_audit(home: FleetHome, bot: str, far: Path | None, rounds: int) -> dict:
    """Times from an appended line to the mirror and to the TUI's row
    (`far`: the file on the bot's host; None: the fleet home's, a local bot),
    as (median, p95) pairs."""
    from cftui.tui.app import make_app
    from cftui.tui.bot_screen import BotScreen
    from cftui.tui.traffic_view import TrafficView

    near = home.traffic_log(bot)
    app = make_app(home, open_bot=bot, open_tab="traffic", status_interval=3600)
    mirror_s: list[float] = []
    table_s: list[float] = []
    async with app.run_test(size=(120, 40)):
        await _until(lambda: isinstance(app.screen, BotScreen) and app.screen.query(TrafficView))
        view = app.screen.query_one(TrafficView)

        def in_table(call_id: str) -> bool:
            for row in range(max(view.row_count - 5, 0), view.row_count):
                rec = view.tlog.cached(view.line_of(row))
                if isinstance(rec, dict) and rec.get("id") == call_id:
                    return True
            return False

        # The first line: the mirror is up and the view follows the file.
        for n in range(rounds + 1):
            call_id, line = _call(bot, n)
            target = far if far is not None else near
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            start = time.perf_counter()
            try:
                os.write(fd, line)  # one write, as the proxy does
            finally:
                os.close(fd)
            timeout = 60.0 if n == 0 else 30.0
            mirrored = await _until(lambda c=call_id: _has_id(near, c), timeout)
            shown = await _until(lambda c=call_id: in_table(c), timeout)
            if n:
                mirror_s.append(mirrored - start)
                table_s.append(shown - start)
            await asyncio.sleep(0.2)
    await app.runtimes.aclose()  # its links, before the hosts go
    return {"mirror": _median_p95(mirror_s), "table": _median_p95(table_s)}


def audit_fleet(operator: Path, hosts: list[TestHost], bots: int, over: int) -> FleetHome:
    """A fleet of `bots` remote bots (a0...) spread over the first `over`
    hosts, and a local one ("here"), with a root of its own on each host."""
    home = FleetHome(operator / f"audit-{bots}")
    home.root.mkdir()
    home.fleet_toml.write_text("".join(
        f'[hosts.h{i}]\nurl = "{h.url()}"\ndocker_socket = "{h.docker_sock}"\n'
        f'root = "{h.root}/cfa{bots}"\n' for i, h in enumerate(hosts[:over])))  # fmt: skip
    for j in range(bots):
        init_bot(home, f"a{j}", code=DEMO, host=f"h{j * over // bots}")
    init_bot(home, "here", code=DEMO)
    far = Path(HostLayout.of(home.host("h0")).traffic_log("a0"))
    far.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


def print_audit(rounds: int, rows: list[tuple[str, dict | None]], local: dict) -> None:
    """Each fleet's times, with the mirror's as ratios of the 1-bot and
    10-bot fleets' (median and p95 each), and the table's of the local bot's."""

    def ms(pair: tuple[float, float]) -> str:
        return f"{pair[0] * 1000:7.1f} / {pair[1] * 1000:7.1f} ms"

    def ratio(a: tuple[float, float], b: tuple[float, float]) -> str:
        return f"{a[0] / b[0]:.2f}x / {a[1] / b[1]:.2f}x"

    print(f"an LLM call's line reaching the operator, median / p95 of {rounds}"
          " (every remote bot of the fleet mirrored meanwhile)")  # fmt: skip
    print(f"  baseline, a local bot, in the TUI table:  {ms(local['table'])}")
    bases = [(name, r) for name, r in rows if r is not None and not name.startswith("30")]
    for name, r in rows:
        if r is None:
            print(f"  {name + ':':19} a line never reached the local mirror within 60 s")
            continue
        against = "; ".join(f"{ratio(r['mirror'], b['mirror'])} the {n}'s"
                            for n, b in bases if n != name)  # fmt: skip
        print(f"  {name + ',':19} in the local mirror: {ms(r['mirror'])}  ({against})")
        print(f"  {name + ',':19} in the TUI table:    {ms(r['table'])}"
              f"  ({ratio(r['table'], local['table'])} the local bot's)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--audit-only", action="store_true", help="only the audit line's times")
    args = parser.parse_args()
    operator = Path(tempfile.mkdtemp(prefix="cf-bench-hosts-"))
    ssh = operator / ".ssh"
    ssh.mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh / "id_ed25519")],
                   check=True)  # fmt: skip
    os.environ["HOME"] = str(operator)
    os.environ.pop("SSH_AUTH_SOCK", None)
    hosts = [TestHost(f"cfh21c{i}", 8 + i, Path(f"/tmp/cf-host-bench{i}")) for i in range(3)]
    try:
        known = []
        for h in hosts:
            h.close()
            h.build((ssh / "id_ed25519.pub").read_text())
            known.append(h.known_hosts_line())
        (ssh / "known_hosts").write_text("\n".join(known) + "\n")
        # The audit line: fleets of their own, all their remote bots mirrored
        # while the app runs, and a local bot as the baseline.
        rows: list[tuple[str, dict | None]] = []
        for bots, over, name in ((1, 1, "1 bot"), (10, 1, "10 bots on 1 host"),
                                 (30, 3, "30 bots on 3 hosts")):  # fmt: skip
            ahome = audit_fleet(operator, hosts, bots, over)
            far = Path(HostLayout.of(ahome.host("h0")).traffic_log("a0"))
            try:
                rows.append((name, asyncio.run(timed_audit(ahome, "a0", far, args.rounds))))
            except TimeoutError:
                rows.append((name, None))
        local = asyncio.run(timed_audit(ahome, "here", None, args.rounds))
        print_audit(args.rounds, rows, local)
        if args.audit_only:
            return 0
        for h in hosts:
            subprocess.run(f"docker save {IMAGE} | DOCKER_HOST={h.docker_host} docker load",
                           shell=True, check=True, capture_output=True)  # fmt: skip
        home = FleetHome(operator / "fleet")
        home.root.mkdir()
        home.fleet_toml.write_text("".join(
            f'[hosts.h{i}]\nurl = "{h.url()}"\ndocker_socket = "{h.docker_sock}"\n'
            f'root = "{h.root}/cf"\n' for i, h in enumerate(hosts)))  # fmt: skip
        for i, h in enumerate(hosts):
            for j in range(10):
                init_bot(home, f"b{i}-{j}", code=DEMO, host=f"h{i}")
                stand_in(h, f"b{i}-{j}")
        cold = asyncio.run(timed_status(home, args.rounds, warm=False))
        warm = asyncio.run(timed_status(home, args.rounds, warm=True))
        print(f"status of 30 bots on 3 hosts, {args.rounds} rounds")
        print(f"  baseline, a connection per command: {cold * 1000:8.1f} ms")
        print(f"  warm, one link per host reused:     {warm * 1000:8.1f} ms"
              f"  ({warm / cold:.2f}x the baseline)")  # fmt: skip

        spread = [f"b{i}-{j}" for i in range(3) for j in range(4)][:10]
        one = [f"b0-{j}" for j in range(10)]
        t_spread = timed_kill(home, spread)
        for name in spread:
            stand_in(hosts[int(name[1])], name)
        t_one = timed_kill(home, one)
        print("kill switch")
        print(f"  baseline, 10 bots on one host:      {t_one * 1000:8.1f} ms")
        print(f"  10 bots over 3 hosts:               {t_spread * 1000:8.1f} ms"
              f"  ({t_spread / t_one:.2f}x the baseline)")  # fmt: skip

    finally:
        for h in hosts:
            h.close()
        subprocess.run(["rm", "-rf", str(operator)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
