"""Benchmark of `cftui costs` and the fleet view's spend counters on a big
traffic.jsonl (issue 19).

Generates (once, cached under /tmp/cftui-bench-costs) a ~1 GB traffic.jsonl
of calls as the LLM proxy writes them: a start line, then the end line with
`cost_usd` and `cost_status` after the bodies (a tenth of them an unknown
model: null cost), over the last 30 days. Then times, as the operator runs
them, in the same run:

- the baseline: `cftui traffic BOT --json | wc -l` (every call read once);
- `cftui costs` (per bot: the C-speed totals), `--by model`, `--by day`,
  `--by provider --since` a week ago (only the last week is read);
- the fleet view's counters in-process (`DailyCounter`): today's and this
  month's spend, the first count and a count after 100 appended calls.

Wall time and CPU (this process's children, or this process) are printed
beside the baseline's, as ratios.

    .venv/bin/python bench/costs.py [--calls 400000] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cfproxies.jsoncodec import dumps_line
from cfproxies.record import new_record, start_line

ROOT = Path("/tmp/cftui-bench-costs")
BOT = "bench"
MODELS = (
    ("anthropic", "claude-sonnet-4-5", "/v1/messages"),
    ("openai", "gpt-4o-mini", "/v1/chat/completions"),
    ("gemini", "gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:generateContent"),
    ("openai", "selfhosted-llama-70b", "/v1/chat/completions"),  # no price: null
)
FILLER = (
    "Summarise the open issues of the repository and propose the next three "
    "steps, with the files to change and the tests to add. "
) * 10
ID = "0" * 31 + "@"  # 32 characters, replaced by the call's id


def _templates() -> list[tuple[bytes, bytes]]:
    """(start line, end line) per model, with @-slots for what varies."""
    out = []
    for provider, model, path in MODELS:
        rec = new_record(bot=BOT, provider=provider, method="POST", path=path, epoch=0)
        rec.update(id=ID, ts="@TS@", model=model)
        rec["request"] = {
            "model": model,
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": FILLER}],
        }
        rec["req_bytes"] = 1400
        start = dumps_line(start_line(rec, 1374))
        rec.update(status=200, stream=True, ttfb_ms=321.0, duration_ms=2345.0)
        rec.update(tokens_in=1200, tokens_out=300, cache_read=0, cache_write=0, resp_bytes=700)
        rec["response"] = {"text": "@TEXT@", "stop_reason": "end_turn"}
        rec["usage_raw"] = {"input_tokens": 1200, "output_tokens": 300}
        if model.startswith("selfhosted"):
            rec.update(cost_usd=None, cost_status="unknown_model")
        else:
            rec.update(cost_usd=0.0081, cost_status="priced")
        rec.update(truncated=False, scrubbed=0)
        out.append((start, dumps_line(rec)))
    return out


def generate(calls: int) -> Path:
    path = ROOT / "home" / "audit" / BOT / "traffic.jsonl"
    stamp = ROOT / f"generated-{calls}"
    if stamp.exists() and path.exists():
        return path
    shutil.rmtree(ROOT, ignore_errors=True)
    from cftui.botinit import init_bot
    from cftui.fleet import FleetHome

    home = FleetHome(ROOT / "home")
    init_bot(home, BOT)
    templates = _templates()
    now = datetime.now(UTC)
    first = now - timedelta(days=30)
    step = (now - first).total_seconds() / calls
    with open(path, "wb") as f:
        batch: list[bytes] = []
        for n in range(calls):
            ts = (first + timedelta(seconds=n * step)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            start, end = templates[n % 10 % len(templates)]  # 1 in 10 unpriced
            ident = f"{n:032x}".encode()
            batch.append(start.replace(ID.encode(), ident).replace(b"@TS@", ts.encode()))
            text = f"answer {n} " * (n % 40)
            batch.append(
                end.replace(ID.encode(), ident)
                .replace(b"@TS@", ts.encode())
                .replace(b"@TEXT@", text.encode())
            )
            if len(batch) >= 20000:
                f.write(b"".join(batch))
                batch.clear()
        f.write(b"".join(batch))
    stamp.write_text("")
    return path


def timed(cmd: str) -> tuple[float, float, str]:
    """(wall s, CPU s of the whole process tree, last line of stdout) of a
    shell command. The scan's worker processes are the command's
    grandchildren, which RUSAGE_CHILDREN never sees: the tree is sampled
    every 20 ms (psutil) and each process's last CPU time kept."""
    import psutil

    seen: dict[int, float] = {}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env()
    )
    root = psutil.Process(proc.pid)
    out = bytearray()
    os.set_blocking(proc.stdout.fileno(), False)  # type: ignore[union-attr]
    while proc.poll() is None:
        try:
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    times = p.cpu_times()
                    seen[p.pid] = times.user + times.system
        except psutil.Error:
            pass
        chunk = proc.stdout.read()  # type: ignore[union-attr]
        if chunk:
            out += chunk
        time.sleep(0.02)
    out += proc.stdout.read() or b""  # type: ignore[union-attr]
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{cmd}: exit {proc.returncode}")
    lines = out.decode().strip().splitlines()
    return wall, sum(seen.values()), lines[-1] if lines else ""


def _env() -> dict[str, str]:
    root = Path(__file__).resolve().parent.parent
    return {**os.environ, "PYTHONPATH": f"{root}:{root / 'proxies'}"}


def counters(path: Path) -> list[tuple[str, float, float]]:
    """The fleet view's counters in this process: (what, wall s, CPU s of
    this process and of the scan's worker processes)."""
    from cftui.audit import rangescan
    from cftui.audit.traffic.daily import DailyCounter, month_start

    def cpu() -> float:
        return time.process_time() + sum(s.cpu for s in rangescan.worker_stats())

    out = []
    now = datetime.now(UTC)
    start, end = _templates()[0]
    for label, counter in (
        ("today's spend, first count", DailyCounter(path)),
        ("this month's spend, first count", DailyCounter(path, month_start)),
        # A month as long as the log (the bench's 30 days): the whole file.
        ("a whole-log month, first count", DailyCounter(path, lambda _e: "2000-01-01")),
    ):
        c0, t0 = cpu(), time.perf_counter()
        totals = counter.update(now)
        wall, used = time.perf_counter() - t0, cpu() - c0
        out.append((f"{label} ({totals.calls:,} calls, ${totals.cost_usd:,.2f})", wall, used))
        ts = now.strftime("%Y-%m-%dT%H:%M:%S.000Z").encode()
        with open(path, "ab") as f:
            for n in range(100):
                ident = f"{10**9 + n:032x}".encode()
                f.write(start.replace(ID.encode(), ident).replace(b"@TS@", ts))
                f.write(
                    end.replace(ID.encode(), ident).replace(b"@TS@", ts).replace(b"@TEXT@", b"")
                )
        c0, t0 = cpu(), time.perf_counter()
        counter.update(now)
        out.append(("  then after 100 appended calls", time.perf_counter() - t0, cpu() - c0))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400_000)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    path = generate(args.calls)
    size = path.stat().st_size
    print(
        f"log: {path} {size / 1e9:.2f} GB, {args.calls:,} calls ({time.perf_counter() - t0:.0f} s)"
    )
    cftui = f"{sys.executable} -m cftui --home {ROOT / 'home'}"
    week = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%d")
    runs = [
        ("cftui costs", f"{cftui} costs"),
        ("cftui costs --by model", f"{cftui} costs --by model"),
        ("cftui costs --by day", f"{cftui} costs --by day"),
        (
            f"cftui costs --by provider --since {week}",
            f"{cftui} costs --by provider --since {week}",
        ),
    ]
    base = None
    if not args.skip_baseline:
        base = timed(f"{cftui} traffic {BOT} --json | wc -l")
        print(
            f"{'baseline: cftui traffic --json | wc -l':<48} {base[0]:7.2f} s wall {base[1]:7.2f} s CPU"
        )
    for label, cmd in runs:
        wall, cpu, last = timed(cmd)
        ratio = f"  {base[0] / wall:5.1f}x faster, {base[1] / cpu:5.1f}x less CPU" if base else ""
        print(f"{label:<48} {wall:7.2f} s wall {cpu:7.2f} s CPU{ratio}   [{last.strip()[:60]}]")
    for label, wall, cpu in counters(path):
        ratio = f"  {base[0] / wall:7.1f}x faster" if base and wall else ""
        print(f"{label:<48} {wall:7.3f} s wall {cpu:7.3f} s CPU{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
