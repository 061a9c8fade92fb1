"""Benchmark of the TUI on a huge traffic.jsonl (issue 8).

Generates (once, cached under /tmp/cftui-bench-tui) a ~1 GB traffic.jsonl of
~500,000 records of ~2 KB, then runs the real app headless (Textual's
`run_test`, the real Docker runtime registry) and measures:

- newest rows on screen after opening the traffic tab   (target ≤ 1 s)
- peak RSS of the whole process                          (target ≤ 150 MB)
- appended record visible while 500 records/s are written (target ≤ 250 ms)
- a filter over the whole file, in a worker with progress (target ≤ 2 s),
  with the event loop's worst stall meanwhile (input stays responsive);
  the scan runs in worker processes (`cftui.audit.rangescan`), so CPU and
  RSS are given for the app's process and for the workers apart
- fleet screen first paint with 20 bots                   (target ≤ 1 s)

Baselines: `tail -n 100` of the file (what "show the newest" costs a plain
tool) and a full `json.loads` scan (what a naive filter costs).

    .venv/bin/python bench/tui_traffic.py [--records 500000] [--skip-baselines]
    .venv/bin/python bench/tui_traffic.py --reader-only   # filters, reader alone
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path("/tmp/cftui-bench-tui")
BOT = "bench"
PROVIDERS = (
    ("anthropic", "claude-sonnet-4-5", "/v1/messages"),
    ("openai", "gpt-4o-mini", "/v1/chat/completions"),
    ("gemini", "gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:generateContent"),
)
FILTERS = ("status:5xx", "needle-xyzzy", "provider:openai", "model:gemini")
FILLER = (
    "Summarise the open issues of the repository and propose the next three "
    "steps, with the files to change and the tests to add. "
) * 10


def _template(provider: str, model: str, path: str) -> bytes:
    """One record as bytes with %-slots for what varies (id, ts, status...)."""
    rec = {
        "v": 1,
        "id": "@ID@",
        "ts": "@TS@",
        "bot": BOT,
        "provider": provider,
        "method": "POST",
        "path": path,
        "model": model,
        "status": 999111,
        "stream": True,
        "ttfb_ms": 888111,
        "duration_ms": 777111,
        "tokens_in": 666111,
        "tokens_out": 555111,
        "cache_read": 0,
        "cache_write": 0,
        "req_bytes": 1400,
        "resp_bytes": 700,
        "request": {
            "model": model,
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": FILLER}],
        },
        "response": {"text": "@TEXT@", "stop_reason": "end_turn"},
        "error": None,
    }
    raw = json.dumps(rec).replace("%", "%%")
    for marker, slot in (
        ('"@ID@"', '"%s"'),
        ('"@TS@"', '"%s"'),
        ("999111", "%d"),
        ("888111", "%.1f"),
        ("777111", "%.1f"),
        ("666111", "%d"),
        ("555111", "%d"),
        ('"@TEXT@"', '"%s"'),
    ):
        raw = raw.replace(marker, slot, 1)
    return raw.encode() + b"\n"


def _record(n: int, templates: list[bytes], day: str) -> bytes:
    status = 529 if n % 50 == 49 else 200
    text = "needle-xyzzy found" if n % 1000 == 0 else "Here are the three steps. " * 8
    secs = n * 0.1
    ts = f"{day}T{int(secs // 3600) % 24:02d}:{int(secs // 60) % 60:02d}:{secs % 60:06.3f}Z"
    return templates[n % 3] % (
        f"{n:032x}".encode(),
        ts.encode(),
        status,
        150.0 + n % 300,
        1500.0 + n % 3000,
        1000 + n % 5000,
        100 + n % 700,
        text.encode(),
    )


def generate(home, records: int) -> Path:
    """The big file, generated once and reused (truncated back to its size)."""
    from cftui.botinit import init_bot

    path = home.traffic_log(BOT)
    size_file = ROOT / f"size-{records}"
    if size_file.exists() and path.exists():
        size = int(size_file.read_text())
        if path.stat().st_size >= size:
            os.truncate(path, size)  # drop what earlier runs appended
            return path
    shutil.rmtree(ROOT, ignore_errors=True)
    init_bot(home, BOT)
    templates = [_template(*p) for p in PROVIDERS]
    day = time.strftime("%Y-%m-%d", time.gmtime())
    started = time.monotonic()
    with open(path, "wb") as f:
        batch = []
        for n in range(records):
            batch.append(_record(n, templates, day))
            if len(batch) == 5000:
                f.write(b"".join(batch))
                batch = []
        f.write(b"".join(batch))
    size_file.write_text(str(path.stat().st_size))
    print(
        f"generated {records:,} records, {path.stat().st_size / 1e9:.2f} GB "
        f"in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return path


def baseline_tail(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["tail", "-n", "100", str(path)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


NAIVE_FILTER = """
import json, sys
hits = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        if json.loads(line)["status"] >= 500:
            hits += 1
"""


def baseline_json_scan(path: Path) -> float:
    """A naive filter: every line through json.loads (in its own process, so
    its memory does not count against the app's)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", NAIVE_FILTER, str(path)], check=True)
    return time.perf_counter() - started


class PeakRSS:
    """Samples every 20 ms in a thread the RSS of this process (the app's)
    and of the scan's worker processes (largest one, and all together)."""

    def __init__(self) -> None:
        self.peak = 0
        self.worker_peak = 0
        self.workers_peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from cftui.audit import rangescan

        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            workers = [w.rss for w in rangescan.worker_stats()]
            if workers:
                self.worker_peak = max(self.worker_peak, *workers)
                self.workers_peak = max(self.workers_peak, sum(workers))
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class LoopLag:
    """The event loop's worst stall: a 10 ms ticker's largest overshoot."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, loop.time() - before - 0.01)

    def start(self) -> None:
        self.worst = 0.0
        self._task = asyncio.get_running_loop().create_task(self._tick())

    def stop(self) -> float:
        if self._task:
            self._task.cancel()
        return self.worst


def workers_cpu() -> float:
    """CPU seconds (user + system) of the scan's live worker processes."""
    from cftui.audit import rangescan

    return sum(w.cpu for w in rangescan.worker_stats())


def pool_start(results: dict) -> None:
    """The worker pool's start (fork server, one worker per CPU, this
    module and the reader imported): paid once, by the first scan of a big
    file; in the app, the background totals after the index."""
    from cftui.audit import rangescan

    started = time.perf_counter()
    rangescan.warm()
    results["pool_start"] = time.perf_counter() - started
    results["workers"] = len(rangescan.worker_stats())


def screen_text(app) -> str:
    """The screen as the terminal shows it (the compositor's last frame)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True)
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text()


async def wait_for(pilot, predicate, timeout: float = 30.0, step: float = 0.002) -> float:
    """Poll like a watcher would: a bare sleep, not `pilot.pause` (which waits
    on every widget's queue and forces a repaint, adding load of its own)."""
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout:
            raise TimeoutError("condition not met")
        await asyncio.sleep(step)
    return time.perf_counter() - started


def bench_reader(path: Path, results: dict) -> None:
    """The reader alone (no Textual): newest 100 records parsed, full index,
    today's totals for the fleet screen."""
    from cftui.audit.traffic.daily import DailyCounter
    from cftui.audit.traffic.log import TrafficLog

    log = TrafficLog(path)
    started = time.perf_counter()
    log.open()
    ready = threading.Event()

    def progress(_f: float) -> None:
        if len(log) >= 100:
            ready.set()

    thread = threading.Thread(target=log.scan, kwargs={"progress": progress})
    thread.start()
    ready.wait()
    newest = log.tail(100)
    results["reader_newest_100"] = time.perf_counter() - started
    thread.join()
    results["reader_index"] = time.perf_counter() - started
    results["reader_index_bytes"] = log._rev.itemsize * len(log._rev)
    assert len(newest) == 100
    log.close()
    # The fleet screen's "calls today" of this bot: every record is today's.
    t0, cpu0, wcpu0 = time.perf_counter(), time.process_time(), workers_cpu()
    calls = DailyCounter(path).update().calls
    results["daily_totals"] = (
        time.perf_counter() - t0,
        time.process_time() - cpu0,
        workers_cpu() - wcpu0,
        calls,
    )


def bench_reader_filters(path: Path, results: dict) -> None:
    """Each filter through the reader alone (no Textual, one thread): what
    the TUI's worker costs, without the event loop competing for the GIL."""
    from cftui.audit.traffic.filter import TrafficFilter
    from cftui.audit.traffic.log import TrafficLog

    with TrafficLog(path) as log:
        log.scan()
        out = []
        for spec in FILTERS:
            t0, cpu0, wcpu0 = time.perf_counter(), time.process_time(), workers_cpu()
            result = log.filter(TrafficFilter.parse(spec))
            elapsed = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            out.append((spec, elapsed, len(result.lines), cpu, workers_cpu() - wcpu0))
    results["reader_filters"] = out


async def bench_traffic(home, path: Path, results: dict) -> None:
    from cftui.tui.app import make_app
    from cftui.tui.bot_screen import BotScreen
    from cftui.tui.traffic_tab import TrafficTab
    from cftui.tui.traffic_view import TrafficView

    app = make_app(home, open_bot=BOT, open_tab="traffic", status_interval=3600)
    started = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(
            pilot, lambda: isinstance(app.screen, BotScreen) and app.screen.query(TrafficView)
        )
        view = app.screen.query_one(TrafficView)
        opened = time.perf_counter()

        last = view.tlog.path.stat().st_size
        with open(view.tlog.path, "rb") as f:
            f.seek(max(last - 65536, 0))
            newest = json.loads(f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1])
        newest_time = newest["ts"][11:23]

        def newest_on_screen() -> bool:
            """What the terminal would show, rendered: the newest call's row."""
            return newest_time in screen_text(app)

        await wait_for(pilot, newest_on_screen, step=0.05)
        # (no pilot.pause() here: it waits for every queue to drain, i.e. the scan)
        shown = time.perf_counter()
        results["newest_rows_from_tab"] = shown - opened
        results["newest_rows_from_start"] = shown - started
        await wait_for(pilot, lambda: view.tlog.scanned, timeout=60)
        results["index_complete"] = time.perf_counter() - opened
        await wait_for(
            pilot, lambda: not view.counting and view.state.totals.calls > 0, timeout=120
        )
        results["totals_complete"] = time.perf_counter() - opened
        results["lines"] = len(view.tlog)
        results["rss_after_open"] = psutil.Process().memory_info().rss

        # --- appends at 500 records/s ------------------------------------
        written: dict[str, float] = {}
        stop = threading.Event()
        templates = [_template(*p) for p in PROVIDERS]
        day = time.strftime("%Y-%m-%d", time.gmtime())

        def writer() -> None:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            n = 10_000_000
            next_at = time.perf_counter()
            try:
                while not stop.is_set():
                    for _ in range(5):  # 5 records every 10 ms = 500/s
                        line = _record(n, templates, day)
                        written[f"{n:032x}"] = time.perf_counter()
                        os.write(fd, line)  # one write per record, as the proxy does
                        n += 1
                    next_at += 0.01
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
            finally:
                os.close(fd)

        latencies: list[float] = []
        seen: set[str] = set()
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        end = time.perf_counter() + 5.0
        while time.perf_counter() < end:
            await asyncio.sleep(0.002)
            n = view.row_count
            now = time.perf_counter()
            top = max(int(view.scroll_y), 0)
            for row in range(max(top, n - 60), n):
                rec = view.tlog.cached(view.line_of(row))
                if isinstance(rec, dict) and rec["id"] in written and rec["id"] not in seen:
                    seen.add(rec["id"])
                    latencies.append(now - written[rec["id"]])
        stop.set()
        thread.join()
        latencies.sort()
        results["appended"] = len(written)
        results["append_seen"] = len(latencies)
        if latencies:
            results["append_p50"] = latencies[len(latencies) // 2]
            results["append_p95"] = latencies[int(len(latencies) * 0.95)]
            results["append_max"] = latencies[-1]

        # --- filters over everything -----------------------------------------
        tab = app.screen.query_one(TrafficTab)
        lag = LoopLag()
        filters = []
        for spec in FILTERS:
            await pilot.press("ctrl+l")
            await wait_for(pilot, lambda: view.rows is None)
            app.screen.query_one("#traffic-filter").value = spec
            app.screen.query_one("#traffic-filter").focus()
            lag.start()
            t0 = time.perf_counter()
            cpu0 = sum(psutil.Process().cpu_times()[:2])
            wcpu0 = workers_cpu()
            await pilot.press("enter")
            await wait_for(
                pilot, lambda spec=spec: view.rows is not None and str(tab.flt) == spec, timeout=60
            )
            elapsed = time.perf_counter() - t0
            cpu = sum(psutil.Process().cpu_times()[:2]) - cpu0
            wcpu = workers_cpu() - wcpu0
            filters.append((spec, elapsed, len(view.rows), lag.stop(), cpu, wcpu))
        results["filters"] = filters
        results["rss_after_filters"] = psutil.Process().memory_info().rss


async def bench_fleet(results: dict) -> None:
    from cftui.botinit import init_bot
    from cftui.fleet import FleetHome
    from cftui.tui.app import make_app
    from cftui.tui.fleet_table import FleetTable

    root = ROOT / "fleet20"
    home = FleetHome(root)
    if not home.exists():
        for i in range(20):
            init_bot(home, f"bot-{i:02d}")
    app = make_app(home, status_interval=3600)
    started = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:

        def painted() -> bool:
            tables = app.screen.query(FleetTable)
            return bool(tables) and tables.first().row_count == 20

        await wait_for(pilot, painted)
        await pilot.pause()
        results["fleet_first_paint"] = time.perf_counter() - started
        await wait_for(pilot, lambda: len(app.statuses) == 20, timeout=60)
        results["fleet_status"] = time.perf_counter() - started
        results["fleet_status_errors"] = app.status_errors


def reader_filter_rows(results: dict, scan: float | None) -> list[tuple[str, str, str, str]]:
    rows = []
    for spec, elapsed, hits, cpu, wcpu in results.get("reader_filters", ()):
        base = f"json.loads scan: {scan:.1f} s ({scan / elapsed:.1f}x faster)" if scan else "-"
        rows.append(
            (
                f"reader alone: filter «{spec}» → {hits:,} rows",
                f"{elapsed * 1000:,.0f} ms (CPU {cpu:.2f} s + workers {wcpu:.2f} s)",
                "≤ 2 s",
                base,
            )
        )
    return rows


def report(results: dict) -> None:
    def ms(v: float) -> str:
        return f"{v * 1000:,.0f} ms"

    rows = []
    tail = results.get("baseline_tail")
    newest = results["newest_rows_from_tab"]
    rows.append(
        (
            "newest rows on screen after opening the traffic tab",
            ms(newest),
            "≤ 1 s",
            f"tail -n 100: {ms(tail)} ({newest / tail:.1f}x)" if tail else "-",
        )
    )
    rows.append(
        ("… from app start (process already up)", ms(results["newest_rows_from_start"]), "", "")
    )
    rows.append(
        (
            "reader alone: newest 100 records parsed (no UI)",
            ms(results["reader_newest_100"]),
            "",
            f"tail -n 100: {ms(tail)}" if tail else "-",
        )
    )
    rows.append(
        (
            "reader alone: index of every line",
            ms(results["reader_index"]),
            "",
            f"{results['reader_index_bytes'] / 2**20:.1f} MiB of offsets",
        )
    )
    elapsed, cpu, wcpu, calls = results["daily_totals"]
    rows.append(
        (
            f"reader alone: today's totals for the fleet screen ({calls:,} calls)",
            f"{ms(elapsed)} (CPU {cpu:.2f} s + workers {wcpu:.2f} s)",
            "",
            "",
        )
    )
    rows.append(
        ("index of every line complete (background)", ms(results["index_complete"]), "", "")
    )
    rows.append(
        ("totals of every line complete (background)", ms(results["totals_complete"]), "", "")
    )
    peak = results["peak_rss"] / 2**20
    rows.append(("peak RSS of the app's process (whole run)", f"{peak:.0f} MB", "≤ 150 MB", ""))
    rows.append(
        (
            f"peak RSS of the {results['workers']} scan workers: largest one / all together",
            f"{results['worker_peak_rss'] / 2**20:.0f} / {results['workers_peak_rss'] / 2**20:.0f} MB",
            "",
            "(plus the fork server)",
        )
    )
    rows.append(
        (
            f"worker pool start ({results['workers']} processes, once)",
            ms(results["pool_start"]),
            "",
            "",
        )
    )
    rows.append(
        (
            "RSS after opening the tab / after the filters",
            f"{results['rss_after_open'] / 2**20:.0f} / {results['rss_after_filters'] / 2**20:.0f} MB",
            "",
            "",
        )
    )
    if "append_p95" in results:
        rows.append(
            (
                f"appended record visible at 500/s ({results['append_seen']}/{results['appended']} seen)",
                f"p50 {ms(results['append_p50'])} · p95 {ms(results['append_p95'])} · max {ms(results['append_max'])}",
                "≤ 250 ms",
                "",
            )
        )
    scan = results.get("baseline_json")
    rows.extend(reader_filter_rows(results, scan))
    for spec, elapsed, hits, lag, cpu, wcpu in results["filters"]:
        base = f"json.loads scan: {scan:.1f} s ({scan / elapsed:.1f}x faster)" if scan else "-"
        rows.append(
            (
                f"filter «{spec}» → {hits:,} rows (worst loop stall {ms(lag)})",
                f"{ms(elapsed)} (app CPU {cpu:.2f} s + workers {wcpu:.2f} s)",
                "≤ 2 s",
                base,
            )
        )
    rows.append(
        ("fleet screen first paint, 20 bots", ms(results["fleet_first_paint"]), "≤ 1 s", "")
    )
    rows.append(("… with every bot's status from Docker", ms(results["fleet_status"]), "", ""))
    print(
        f"\n{results['lines']:,} lines, {results['size'] / 1e9:.2f} GB; load average "
        f"{os.getloadavg()[0]:.1f}; scans in {results['workers']} worker processes\n"
    )
    print("| measure | result | target | baseline |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if results.get("fleet_status_errors"):
        print("\nstatus errors:", results["fleet_status_errors"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument(
        "--reader-only",
        action="store_true",
        help="only the reader's filters (no app): the quick check of filter speed",
    )
    args = parser.parse_args()
    os.environ.pop("CLAWFACTORY_HOME", None)
    from cftui.fleet import FleetHome

    home = FleetHome(ROOT / "home")
    path = generate(home, args.records)
    results: dict = {"size": path.stat().st_size}
    if not args.skip_baselines:
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # warm cache
        results["baseline_tail"] = min(baseline_tail(path) for _ in range(5))
        results["baseline_json"] = baseline_json_scan(path)
    if args.reader_only:
        pool_start(results)
        bench_reader_filters(path, results)
        scan = results.get("baseline_json")
        print(
            f"\n{results['size'] / 1e9:.2f} GB; load average {os.getloadavg()[0]:.1f}; "
            f"scans in {results['workers']} worker processes (started in "
            f"{results['pool_start'] * 1000:.0f} ms)\n"
        )
        print("| measure | result | target | baseline |")
        print("| --- | --- | --- | --- |")
        for row in reader_filter_rows(results, scan):
            print("| " + " | ".join(row) + " |")
        return 0
    with PeakRSS() as peak:
        pool_start(results)
        bench_reader(path, results)
        bench_reader_filters(path, results)
        asyncio.run(bench_traffic(home, path, results))
        asyncio.run(bench_fleet(results))
    results["peak_rss"] = peak.peak
    results["worker_peak_rss"] = peak.worker_peak
    results["workers_peak_rss"] = peak.workers_peak
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
