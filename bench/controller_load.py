"""What each bot costs the machine that watches the fleet, measured on real
running demo bots and extrapolated to 100 and 1,000 bots (issue 21,
docs/scaling.md).

    PYTHONPATH=$PWD:$PWD/proxies .venv/bin/python bench/controller_load.py   # --sizes 1 3 --window 60

A throwaway fleet home under /tmp with demo-agent bots of unique names
(`docker_bench_fleet`, the demo's fake provider) is measured at two sizes,
1 bot then 3 (more started between). At each size the two watchers run as
an operator runs them, each in a process of its own: `cftui serve` (the
controller: watchdog, budgets, schedules) and the TUI (the real app,
headless, on its fleet screen). Each talks to the real engine through a
counting relay of its own (`engine_tap`: `DOCKER_HOST` pointed at it), so
every engine connection and API call it makes is counted; its CPU time,
bytes read and written, descriptors and threads come from /proc. Beside
them, what the bots themselves produce in the same window: lines and bytes
of `audit/events.jsonl`, `traffic.jsonl` and the other audit files, the
services' log bytes (`docker logs --since --until`) and the engine events
of their containers (`docker events --since --until`).

Per-bot rates are the slope between the two sizes, the fixed part the rest
(what a watcher costs with no bot); the extrapolation is fixed + N * slope,
which assumes every bot behaves like a demo bot (one LLM call per 5 s,
healthchecks every 10 s) and that nothing grows faster than linearly.
An inspect burst gives the engine's inspect rate, which bounds how long a
status poll of N bots takes. Everything the bench made is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import psutil
from docker_bench_fleet import bench_fleet, free_port, start_all, warm_images
from engine_tap import Counts, EngineTap

from cftui import demo
from cftui.controller.watchdog import POLL_S  # the TUI's status_interval is the same 5 s
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime import Runtimes
from cftui.runtime.docker.runtime import DockerRuntime
from cftui.runtime.docker.spec import LABEL_BOT, container_name
from cftui.runtime.status import SERVICES

WARM_S = 15.0  # the watchers' start, first status and event streams: not measured
WATCHERS = ("serve", "tui")


# --- the measured processes -----------------------------------------------------
def tui_child(home: str, seconds: float) -> None:
    """The real app, headless, on its fleet screen, for `seconds` (run by
    the bench in a process of its own with DOCKER_HOST at its tap)."""
    from cftui.tui.app import make_app

    async def run() -> None:
        app = make_app(FleetHome(home))
        async with app.run_test(headless=True, size=(160, 50)):
            await asyncio.sleep(seconds)

    asyncio.run(run())


@dataclass
class ProcSample:
    cpu_s: float
    read_b: int
    write_b: int
    fds: int
    threads: int
    rss: int

    @classmethod
    def of(cls, proc: psutil.Process) -> ProcSample:
        cpu = proc.cpu_times()
        io = proc.io_counters()
        return cls(
            cpu.user + cpu.system + cpu.children_user + cpu.children_system,
            io.read_chars,
            io.write_chars,
            proc.num_fds(),
            proc.num_threads(),
            proc.memory_info().rss,
        )


@dataclass
class Watcher:
    """One measured process and its tap."""

    name: str
    proc: subprocess.Popen
    tap: EngineTap
    psproc: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self.psproc = psutil.Process(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.tap.stop()


def start_watchers(home: FleetHome, tmp: Path, seconds: float) -> list[Watcher]:
    watchers = []
    for name in WATCHERS:
        tap = EngineTap(tmp / f"{name}.sock").start()
        env = dict(os.environ, CLAWFACTORY_HOME=str(home.root), DOCKER_HOST=tap.docker_host)
        if name == "serve":
            argv = [sys.executable, "-m", "cftui", "serve", "--listen", f"127.0.0.1:{free_port()}"]
        else:
            argv = [sys.executable, __file__, "--child-tui", str(home.root), str(seconds)]
        log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - the child's, closed with it
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        watchers.append(Watcher(name, proc, tap))
    return watchers


# --- what the bots produce --------------------------------------------------------
def file_sizes(home: FleetHome, bots: list[BotConfig]) -> dict[str, tuple[int, int]]:
    """(bytes, lines) of the events log and of each bot's audit files."""
    out = {}
    paths = [home.events_log]
    for bot in bots:
        audit = home.audit_dir(bot.name)
        if audit.is_dir():
            paths += sorted(p for p in audit.rglob("*") if p.is_file())
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        out[str(path)] = (len(data), data.count(b"\n"))
    return out


def grown(before: dict, after: dict, pick: Any) -> tuple[int, int]:
    """Bytes and lines the files `pick` selects gained (a rewritten file
    counts its new size)."""
    b = n = 0
    for path, (size, lines) in after.items():
        if not pick(path):
            continue
        size0, lines0 = before.get(path, (0, 0))
        if size >= size0:
            b, n = b + size - size0, n + lines - lines0
        else:
            b, n = b + size, n + lines
    return b, n


def service_log_bytes(client: Any, bots: list[BotConfig], t0: float, t1: float) -> int:
    total = 0
    for bot in bots:
        for svc in SERVICES:
            with contextlib.suppress(Exception):
                total += len(
                    client.api.logs(
                        container_name(bot.name, svc), since=t0, until=t1, timestamps=False
                    )
                )
    return total


def engine_events(
    client: Any, bots: list[BotConfig], t0: float, t1: float
) -> tuple[int, int, dict]:
    """The engine's container events of these bots between t0 and t1: count,
    bytes (as the events stream sends them), and count by action."""
    names = {b.name for b in bots}
    count = size = 0
    actions: dict[str, int] = {}
    stream = client.api.events(
        since=t0, until=t1, decode=False, filters={"type": "container", "label": [LABEL_BOT]}
    )
    buf = b""
    for chunk in stream:
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            event = json.loads(line)
            if (event.get("Actor") or {}).get("Attributes", {}).get(LABEL_BOT) not in names:
                continue
            count += 1
            size += len(line) + 1
            action = str(event.get("Action", "")).split(":")[0]
            actions[action] = actions.get(action, 0) + 1
    return count, size, actions


# --- one size -----------------------------------------------------------------
@dataclass
class Measure:
    bots: int
    seconds: float
    per_watcher: dict[str, dict[str, float]]
    calls: dict[str, Counts]
    produced: dict[str, float]
    event_actions: dict[str, int]
    labelled_containers: int
    serve_said: list[str]


def measure(
    client: Any, home: FleetHome, bots: list[BotConfig], window: float, tmp: Path
) -> Measure:
    watchers = start_watchers(home, tmp, WARM_S + window + 30)
    try:
        time.sleep(WARM_S)
        for w in watchers:
            if w.proc.poll() is not None:
                raise SystemExit(f"{w.name} ended early: see {tmp / (w.name + '.log')}")
        files0 = file_sizes(home, bots)
        s0 = {w.name: ProcSample.of(w.psproc) for w in watchers}
        c0 = {w.name: w.tap.snapshot() for w in watchers}
        t0 = time.time()
        time.sleep(window)
        t1 = time.time()
        s1 = {w.name: ProcSample.of(w.psproc) for w in watchers}
        c1 = {w.name: w.tap.snapshot() for w in watchers}
        files1 = file_sizes(home, bots)
    finally:
        for w in watchers:
            w.stop()
    said = [
        line
        for line in (tmp / "serve.log").read_text(errors="replace").splitlines()
        if any(b.name in line for b in bots)
    ]
    secs = t1 - t0
    per_watcher = {}
    by_watcher = {name: c1[name].since(c0[name]) for name in c0}
    for name in s0:
        a, b = s0[name], s1[name]
        calls = by_watcher[name]
        per_watcher[name] = {
            "cpu_ms_s": (b.cpu_s - a.cpu_s) * 1000 / secs,
            "read_b_s": (b.read_b - a.read_b) / secs,
            "write_b_s": (b.write_b - a.write_b) / secs,
            "fds": b.fds,
            "threads": b.threads,
            "rss_mb": b.rss / 2**20,
            "api_calls_s": calls.total_calls / secs,
            "api_down_b_s": calls.bytes_down / secs,
            "conns_opened_s": calls.connections / secs,
            "conns_open": calls.open_now,
            "conns_peak": c1[name].peak_open,
        }
    ev_b, ev_n = grown(files0, files1, lambda p: p == str(home.events_log))
    tr_b, tr_n = grown(files0, files1, lambda p: p.endswith("/traffic.jsonl"))
    other_b, _ = grown(
        files0,
        files1,
        lambda p: p != str(home.events_log) and not p.endswith("/traffic.jsonl"),
    )
    logs_b = service_log_bytes(client, bots, t0, t1)
    events_n, events_b, actions = engine_events(client, bots, t0, t1)
    labelled = len(client.api.containers(all=True, filters={"label": LABEL_BOT}))
    produced = {
        "events_log_lines_s": ev_n / secs,
        "events_log_b_s": ev_b / secs,
        "traffic_lines_s": tr_n / secs,
        "traffic_b_s": tr_b / secs,
        "other_audit_b_s": other_b / secs,
        "service_log_b_s": logs_b / secs,
        "engine_events_s": events_n / secs,
        "engine_events_b_s": events_b / secs,
    }
    return Measure(len(bots), secs, per_watcher, by_watcher, produced, actions, labelled, said)


# --- the engine's inspect rate -------------------------------------------------------
async def inspect_rate(home: FleetHome, bots: list[BotConfig], total: int) -> tuple[float, float]:
    """Inspects a second through one runtime's pool (what `status` makes: one
    per container, all at once), and the median wall of a status of these bots."""
    runtimes = Runtimes(home)
    rt = runtimes.get("docker")
    assert isinstance(rt, DockerRuntime)
    try:
        walls = []
        for _ in range(10):
            t = time.perf_counter()
            await rt.status(bots)
            walls.append(time.perf_counter() - t)
        names = [container_name(b.name, s) for b in bots for s in SERVICES]
        batch = (names * (total // len(names) + 1))[:total]
        t = time.perf_counter()
        await asyncio.gather(*(rt._run(rt._inspect, n) for n in batch))
        rate = total / (time.perf_counter() - t)
        return rate, statistics.median(walls)
    finally:
        await runtimes.aclose()


async def call_behind_a_poll(
    home: FleetHome, bots: list[BotConfig], n: int, rounds: int = 3
) -> tuple[float, float, float]:
    """Seconds one engine call takes alone, and when submitted to the same
    runtime just after the inspects of a status poll of `n` bots (4n), with
    the poll's own seconds (medians of `rounds`): what the kill switch's
    first call (its cut) waits in the TUI or `serve`, whose kill runs on
    the runtime their status poll uses."""
    runtimes = Runtimes(home)
    rt = runtimes.get("docker")
    assert isinstance(rt, DockerRuntime)
    probe = container_name(bots[0].name, "gateway")
    try:
        await rt._run(rt._inspect, probe)  # the client and its pool made
        t = time.perf_counter()
        await rt._run(rt._inspect, probe)
        alone = time.perf_counter() - t
        names = [container_name(b.name, s) for b in bots for s in SERVICES]
        batch = (names * (4 * n // len(names) + 1))[: 4 * n]
        behind, whole = [], []
        for _ in range(rounds):
            t = time.perf_counter()
            poll = [asyncio.ensure_future(rt._run(rt._inspect, x)) for x in batch]
            await asyncio.sleep(0)  # every inspect handed to the pool, as `status` does
            t1 = time.perf_counter()
            await rt._run(rt._inspect, probe)
            behind.append(time.perf_counter() - t1)
            await asyncio.gather(*poll)
            whole.append(time.perf_counter() - t)
        return alone, statistics.median(behind), statistics.median(whole)
    finally:
        await runtimes.aclose()


# --- the report -----------------------------------------------------------------
def fit(small: float, large: float, n_small: int, n_large: int) -> tuple[float, float]:
    """(fixed, per bot) of a straight line through the two sizes."""
    slope = (large - small) / (n_large - n_small)
    return small - slope * n_small, slope


def fmt(x: float) -> str:
    if abs(x) >= 1e9:
        return f"{x / 1e9:.2f} G"
    if abs(x) >= 1e6:
        return f"{x / 1e6:.2f} M"
    if abs(x) >= 1e4:
        return f"{x / 1e3:.1f} k"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:.3f}"


def report(small: Measure, large: Measure, rate: float, status_wall: float) -> None:
    n0, n1 = small.bots, large.bots
    print(f"\nwindows: {small.seconds:.0f} s at {n0} bot(s), {large.seconds:.0f} s at {n1} bots; "
          f"{large.labelled_containers} labelled containers on the engine (all homes)")  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs, "
          f"RLIMIT_NOFILE soft {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}")  # fmt: skip
    head = f"{'measure':<40} {'at ' + str(n0):>9} {'at ' + str(n1):>9} {'fixed':>9} "
    head += f"{'per bot':>9} {'100 bots':>10} {'1,000 bots':>11}"
    rows: list[tuple[str, float, float]] = []
    for key, label in (
        ("events_log_lines_s", "events.jsonl lines/s"),
        ("events_log_b_s", "events.jsonl bytes/s"),
        ("traffic_lines_s", "traffic.jsonl lines/s"),
        ("traffic_b_s", "traffic.jsonl bytes/s"),
        ("other_audit_b_s", "other audit files bytes/s"),
        ("service_log_b_s", "service logs bytes/s (docker logs)"),
        ("engine_events_s", "engine events/s (the bots' containers)"),
        ("engine_events_b_s", "engine events bytes/s"),
    ):
        rows.append((label, small.produced[key], large.produced[key]))
    for w in WATCHERS:
        for key, label in (
            ("api_calls_s", "engine API calls/s"),
            ("api_down_b_s", "engine API bytes in/s"),
            ("conns_opened_s", "engine connections opened/s"),
            ("conns_peak", "engine connections, peak open"),
            ("cpu_ms_s", "CPU ms/s"),
            ("read_b_s", "bytes read/s (files and sockets)"),
            ("fds", "file descriptors open"),
            ("threads", "threads"),
            ("rss_mb", "RSS MiB"),
        ):
            rows.append((f"{w}: {label}", small.per_watcher[w][key], large.per_watcher[w][key]))
    print(head)
    for label, a, b in rows:
        fixed, slope = fit(a, b, n0, n1)
        at100, at1000 = fixed + 100 * slope, fixed + 1000 * slope
        print(f"{label:<40} {fmt(a):>9} {fmt(b):>9} {fmt(fixed):>9} {fmt(slope):>9} "
              f"{fmt(at100):>10} {fmt(at1000):>11}")  # fmt: skip
    for w in WATCHERS:
        print(f"\n{w}: engine API calls in the {large.seconds:.0f} s window at {n1} bots")
        for key, (n, _up, down) in sorted(large.calls[w].calls.items(), key=lambda kv: -kv[1][0]):
            print(f"  {n:>6}  {key:<40} {fmt(down):>9} B in")
    for m in (small, large):
        if m.serve_said:
            print(f"\nserve's log about the bots, run at {m.bots}:")
            for line in m.serve_said[-20:]:
                print(f"  {line}")
    actions = ", ".join(
        f"{k} {v}" for k, v in sorted(large.event_actions.items(), key=lambda kv: -kv[1])
    )
    print(f"\nengine events of the {n1} bots by action: {actions}")
    print(
        "(connections, threads and descriptors stop growing at the runtime's pool, 64 "
        "connections and threads per engine per process: past it, calls wait in line)"
    )
    print(f"\ninspect rate through one runtime's pool: {rate:.0f}/s; status of {n1} bots: "
          f"{status_wall * 1000:.0f} ms (median of 10)")  # fmt: skip
    for w in WATCHERS:
        status_polls(w, large, rate)


def status_polls(watcher: str, m: Measure, rate: float) -> None:
    """The status poll taken apart (exact counts, not a slope): calls and
    bytes a poll, and what a poll of N bots costs when its inspects go at
    the measured rate and the next poll waits POLL_S after the last ends."""
    calls = m.calls[watcher].calls
    polls = calls.get("GET /containers/json", [0, 0, 0])
    inspects = calls.get("GET /containers/{id}/json", [0, 0, 0])
    if not polls[0] or not inspects[0]:
        print(f"{watcher}: no status poll in the window")
        return
    per_bot = inspects[0] / polls[0] / m.bots
    b_inspect = inspects[2] / inspects[0]
    b_listed = polls[2] / polls[0] / max(1, m.labelled_containers)
    period = m.seconds / polls[0]
    print(f"{watcher}: {polls[0]} polls in {m.seconds:.0f} s (one every {period:.1f} s), "
          f"{per_bot:.1f} inspects a bot a poll, {b_inspect / 1024:.1f} KiB an inspect, "
          f"{b_listed / 1024:.1f} KiB a container in the listing")  # fmt: skip
    print(f"  {'bots':>6} {'poll takes':>10} {'state age':>10} {'calls/s':>8} {'bytes in/s':>11}")
    for n in (m.bots, 100, 1000):
        takes = per_bot * n / rate
        every = max(period, POLL_S + takes)
        size = per_bot * n * b_inspect + 4 * n * b_listed
        print(f"  {n:>6} {takes:>8.1f} s {every + takes:>8.1f} s {(2 + per_bot * n) / every:>8.1f} "
              f"{fmt(size / every):>10}B")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[1, 3], metavar=("SMALL", "LARGE"))
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured per size")
    parser.add_argument("--inspects", type=int, default=1200)
    parser.add_argument("--child-tui", nargs=2, metavar=("HOME", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_tui:
        tui_child(args.child_tui[0], float(args.child_tui[1]))
        return
    small_n, large_n = args.sizes
    if not 0 < small_n < large_n:
        parser.error("--sizes: SMALL LARGE with 0 < SMALL < LARGE")
    prefix = f"cl{secrets.token_hex(2)}b"
    tmp = Path(tempfile.mkdtemp(prefix="cf-controller-load-"))
    client = docker.from_env(timeout=60)  # the bench's own, straight to the engine
    try:
        small, large, rate, wall, queued = _run(client, prefix, small_n, large_n, args, tmp)
    finally:
        client.close()
        shutil.rmtree(tmp, ignore_errors=True)
    report(small, large, rate, wall)
    print(f"\none engine call alone: {queued[0] * 1000:.0f} ms; submitted to the same runtime "
          f"just after a status poll of 100 bots (400 inspects): {queued[1] * 1000:.0f} ms, "
          f"the poll itself {queued[2] * 1000:.0f} ms (medians of 3)")  # fmt: skip


def _run(
    client: Any, prefix: str, small_n: int, large_n: int, args: argparse.Namespace, tmp: Path
) -> tuple[Measure, Measure, float, float, tuple[float, float, float]]:
    with bench_fleet(small_n, prefix) as (home, bots):
        for bot in bots:
            warm_images(home, bot)
        print(f"starting {small_n} bot(s) ({prefix}*) ...", flush=True)
        asyncio.run(_start(home, bots))
        small = measure(client, home, bots, args.window, tmp)
        ip = demo.ensure_fake_llm(client)
        names = [f"{prefix}{i}" for i in range(small_n, large_n)]
        demo.ensure_demo_bots(home, f"http://{ip}:{demo.FAKE_LLM_PORT}/health", names)
        more = [home.update_bot(n, gateway_port=free_port()) for n in names]
        for bot in more:
            warm_images(home, bot)
        print(f"starting {large_n - small_n} more ...", flush=True)
        asyncio.run(_start(home, more))
        bots = bots + more
        large = measure(client, home, bots, args.window, tmp)
        rate, wall = asyncio.run(inspect_rate(home, bots, args.inspects))
        queued = asyncio.run(call_behind_a_poll(home, bots, 100))
    return small, large, rate, wall, queued


async def _start(home: FleetHome, bots: list[BotConfig]) -> None:
    runtimes = Runtimes(home)
    try:
        await start_all(home, bots, runtimes)
    finally:
        await runtimes.aclose()


if __name__ == "__main__":
    main()
