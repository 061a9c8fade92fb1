"""Benchmark: decrypting the MITM capture log (issue 7).

    .venv/bin/python bench/decrypt.py [--flows 100000] [--size 2048] [--runs 15]

Writes FLOWS captured flows of about SIZE bytes each with the proxy's own
session code into a throwaway fleet home, then measures with `cftui`'s reader:

- the newest page (100 rows) decrypted, parsed and turned into table rows
  ("data-ready"), from a fresh reader each time (identity read, key opened):
  target <= 50 ms;
- a full decrypting scan, oldest-first and newest-first, and one that also
  parses every record: target >= 50,000 lines/s; once in this process, once
  across worker processes (one per CPU, `cftui.audit.rangescan`), as
  `cftui decrypt` runs it;

beside the ceiling: a bare `cryptography` Fernet loop over the same tokens,
already in memory, in one thread. The workers' CPU time is read from /proc and
added to this process's for "per CPU-s"; the pool's start (fork server and
workers, cold) and the workers' RSS are printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from cfproxies.egress.session import CaptureSession
from cryptography.fernet import Fernet

from cftui.audit import capture, rangescan
from cftui.audit.capture import CaptureReader, _decrypt_range
from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from cftui.identity import recipient_of

TARGET_PAGE_MS = 50.0
TARGET_SCAN_LPS = 50_000


def make_record(i: int, size: int) -> dict:
    """A flow shaped like the proxy's records, padded to about `size` bytes of JSON."""
    rec = {
        "v": 1,
        "id": f"{i:016x}",
        "bot": "bench",
        "k": "",
        "ts": "2026-11-24T06:30:00.000Z",
        "kind": "http",
        "method": "POST",
        "url": f"https://api.example.com/v1/items/{i}?page=2",
        "host": "api.example.com",
        "port": 443,
        "scheme": "https",
        "http_version": "HTTP/1.1",
        "tls": True,
        "request": {
            "headers": [["host", "api.example.com"], ["content-type", "application/json"]],
            "body": "",
            "truncated": False,
            "bytes": 0,
        },
        "response": {
            "reason": "OK",
            "headers": [["content-type", "application/json"], ["content-length", "0"]],
            "body": "",
            "truncated": False,
            "bytes": 0,
        },
        "status": 200,
        "ttfb_ms": 12.5,
        "duration_ms": 40.25,
        "error": None,
    }
    base = len(json.dumps(rec, separators=(",", ":")))
    pad = max(0, size - base)
    rec["request"]["body"] = json.dumps({"q": "x" * (pad // 3)})
    rec["response"]["body"] = json.dumps({"items": ["y" * (pad - pad // 3 - 24)]})
    return rec


def build(root: Path, flows: int, size: int) -> tuple[FleetHome, str]:
    home = FleetHome(root)
    init_bot(home, "bench")
    s = CaptureSession(
        "bench", home.capture_log("bench"), home.capture_keys("bench"), recipient_of(home, "bench")
    )
    for i in range(flows):
        s.write(make_record(i, size))
    s.close()
    return home, "bench"


def bench_page(home: FleetHome, bot: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        reader = CaptureReader(home, bot)
        rows = [e.summary() for e in reader.page(100)]
        times.append((time.perf_counter() - t0) * 1000)
        assert len(rows) == 100
    return times


def _workers_cpu() -> dict[int, float]:
    return {w.pid: w.cpu for w in rangescan.worker_stats()}


def bench_scan(
    home: FleetHome, bot: str, newest_first: bool, parse: bool, workers: int | None = 1
) -> tuple[float, int, float, float]:
    """Lines/s by wall, per CPU-second (this process plus the pool's workers), and
    an estimate for a quiet machine from the CPU times: the busiest process's
    CPU time, or all of it spread over the CPUs if that is longer."""
    reader = CaptureReader(home, bot)
    n = 0
    w0 = _workers_cpu()
    t0, c0 = time.perf_counter(), time.process_time()
    for e in reader.iter_entries(newest_first=newest_first, workers=workers):
        if parse:
            e.record  # noqa: B018 - the parse is what is measured
        n += 1
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    each = [cpu] + [c - w0.get(pid, 0.0) for pid, c in _workers_cpu().items()]
    assert reader.skipped.total == 0
    quiet = max(max(each), sum(each) / rangescan.cpu_count())
    return n / dt, n, n / sum(each), n / quiet


def bench_pool_start() -> float:
    """Cold start of the worker pool: fork server (with the reader preloaded) and its workers."""
    t0 = time.perf_counter()
    rangescan.warm(_decrypt_range)
    return (time.perf_counter() - t0) * 1000


def bench_ceiling(home: FleetHome, bot: str) -> tuple[float, float]:
    """Bare Fernet.decrypt over in-memory tokens: no file, no line split, no parse."""
    reader = CaptureReader(home, bot)
    lines = home.capture_log(bot).read_bytes().splitlines()
    key_id = json.loads(lines[0])["k"]
    f: Fernet = reader.keys.get(key_id)  # type: ignore[assignment]
    tokens = [json.loads(x)["t"].encode() for x in lines]
    t0, c0 = time.perf_counter(), time.process_time()
    for t in tokens:
        f.decrypt(t)
    return len(tokens) / (time.perf_counter() - t0), len(tokens) / (time.process_time() - c0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    import cryptography

    with tempfile.TemporaryDirectory(prefix="cf-bench-decrypt-") as tmp:
        t0 = time.perf_counter()
        home, bot = build(Path(tmp) / "fleet", args.flows, args.size)
        size_mb = os.path.getsize(home.capture_log(bot)) / 1e6
        print(
            f"{args.flows} flows of ~{args.size} B JSON -> {size_mb:.0f} MB log "
            f"(written in {time.perf_counter() - t0:.1f} s); cryptography {cryptography.__version__}, "
            f"Python {sys.version.split()[0]}"
        )
        page = bench_page(home, bot, args.runs)
        ceiling, ceiling_cpu = bench_ceiling(home, bot)
        procs = rangescan.cpu_count()
        start_ms = bench_pool_start()
        small = os.path.getsize(home.capture_log(bot)) < capture.SCAN_MIN or procs < 2
        procs_label = (
            "  same, in-process (small log or one CPU)" if small else f"  same, {procs} processes"
        )
        # Interleaved, so that a change in the machine's load hits both kinds alike.
        scans = [
            ("scan oldest-first, decrypt", *bench_scan(home, bot, False, False)),
            (procs_label, *bench_scan(home, bot, False, False, None)),
            ("scan newest-first, decrypt", *bench_scan(home, bot, True, False)),
            (procs_label, *bench_scan(home, bot, True, False, None)),
            ("scan oldest-first, decrypt + parse", *bench_scan(home, bot, False, True)),
            (procs_label, *bench_scan(home, bot, False, True, None)),
        ]
        workers_mem = [(w.rss / 2**20, w.pss / 2**20) for w in rangescan.worker_stats()]
        med, p95 = statistics.median(page), sorted(page)[int(0.95 * (len(page) - 1))]
        load = os.getloadavg()[0]
        print(f"load average {load:.1f} on {os.cpu_count()} CPUs (the machine is shared)")
        print()
        print(
            f"{'measure':<42}{'wall':>14}{'target':>13}{'vs ceiling':>12}"
            f"{'per CPU-s':>14}{'vs ceiling':>12}{'est. quiet':>14}{'vs':>7}"
        )
        ok = "OK" if med <= TARGET_PAGE_MS else "MISSED"
        print(
            f"{'newest page (100 rows), median':<42}{med:>11.1f} ms{TARGET_PAGE_MS:>10.0f} ms  {ok}"
        )
        print(f"{'newest page (100 rows), p95':<42}{p95:>11.1f} ms")
        print(
            f"{'bare Fernet loop (ceiling)':<42}{ceiling:>10,.0f} l/s{'':>13}{1.0:>11.2f}x"
            f"{ceiling_cpu:>10,.0f} l/s{1.0:>11.2f}x"
        )
        for name, lps, n, cpu_lps, quiet_lps in scans:
            assert n == args.flows
            ok = "OK" if lps >= TARGET_SCAN_LPS else "MISSED"
            print(
                f"{name:<42}{lps:>10,.0f} l/s{TARGET_SCAN_LPS:>9,} l/s{lps / ceiling:>11.2f}x"
                f"{cpu_lps:>10,.0f} l/s{cpu_lps / ceiling_cpu:>11.2f}x"
                f"{quiet_lps:>10,.0f} l/s{quiet_lps / ceiling_cpu:>7.2f}x  {ok} (wall)"
            )
        print()
        print(
            f"worker pool: {procs} processes (forkserver), cold start {start_ms:.0f} ms; "
            f"worker RSS {' + '.join(f'{r:.0f}' for r, _ in workers_mem)} MB "
            f"(PSS {' + '.join(f'{p:.0f}' for _, p in workers_mem)} MB), "
            f"this process {psutil.Process().memory_info().rss / 2**20:.0f} MB"
        )
        print(
            "ceiling = one thread; per CPU-s counts this process and the workers; est. quiet = "
            f"lines / max(busiest process's CPU-s, all CPU-s / {procs} CPUs), an estimate "
            "for an idle machine from CPU times (vs the ceiling per CPU-s), not a measurement"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
