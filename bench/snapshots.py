"""Snapshot create and restore versus the stock pipelines, side by side.

    .venv/bin/python bench/snapshots.py [--size-mb 1024] [--files 50000] [--rounds 2]

Generates a state of SIZE MB in FILES files under /tmp (removed afterwards),
then, each in its own process so peak RSS is its own:
  create:  `tar -cf - state | age -r RECIPIENT > F`  vs  cftui.snapshots.create_snapshot
  restore: `age -d -i KEY F | tar -xf -`             vs  cftui.snapshots.extract_snapshot
           (decrypt + filtered extraction: the work both sides do; a full
            restore adds a safety snapshot and the swap, timed separately)
Rounds alternate which side goes first; the best round of each is kept,
and dirty pages are flushed (sync) before every timed run. Prints MB/s,
CPU seconds, peak RSS and the ratios ours / CLI (goal: >= 0.8x speed, <= 100 MB RSS).
Rows: create (the shipped one: write-behind + fsync), (nosync) without either,
(no w-b) fsync without write-behind (--write-behind-ab), restore.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cftui.botinit import init_bot, recipient_of  # noqa: E402
from cftui.fleet import FleetHome  # noqa: E402

BOT = "bench"


def generate(state: Path, size_mb: int, files: int) -> int:
    """Files of exponentially distributed sizes (many small, a few large)
    in a tree shaped like OpenClaw's agents/*/sessions; returns bytes."""
    rnd = random.Random(1)
    blob = os.urandom(8 << 20)
    total = size_mb << 20
    left = total
    avg = total / files
    for i in range(files):
        d = state / "agents" / f"a{i % 10}" / "sessions" / f"d{i % 100}"
        d.mkdir(parents=True, exist_ok=True)
        size = left if i == files - 1 else min(left, int(rnd.expovariate(1 / avg)))
        left -= size
        with (d / f"f{i}.jsonl").open("wb") as f:
            while size:
                n = min(size, len(blob))
                off = rnd.randrange(0, len(blob) - n + 1)
                f.write(blob[off : off + n])
                size -= n
    return total


def run(cmd: list[str] | str, *, shell: bool = False, env: dict | None = None) -> Sample:
    """Wall and CPU seconds (user + sys of the whole process tree) and peak RSS
    of the tree (the shell and both sides of a pipe; the Python side, its tar and
    crypto child), sampled every 20 ms. Dirty pages of the previous step are
    flushed first so that no run pays for another's writeback."""
    os.sync()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, shell=shell, env=env)
    root = psutil.Process(proc.pid)
    peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        rss = 0
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        for p in tree:
            with contextlib.suppress(psutil.Error):
                rss += p.memory_info().rss
        peak = max(peak, rss)
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed: {cmd}")
    return Sample(seconds, usage.ru_utime + usage.ru_stime, peak // 1024)


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_kib: int


PY_CREATE = """
import sys
from cftui.fleet import FleetHome
from cftui.snapshots import create_snapshot
info = create_snapshot(FleetHome(sys.argv[1]), sys.argv[2], 'bench', record=False)
print(info.name, file=open(sys.argv[3], 'w'))
"""

# The same, with fsync made a no-op and no write-behind: the CLI pipeline
# leaves its output in the page cache, so this is the like-for-like figure;
# the shipped create writes behind and fsyncs before it names the file
# (durability the baseline does not have).
PY_CREATE_NOSYNC = (
    """
import os
import cftui.snapshots.create
os.fsync = lambda fd: None
cftui.snapshots.create._WRITE_BEHIND = False
"""
    + PY_CREATE
)

# The shipped create (fsync) without the write-behind, for --write-behind-ab.
PY_CREATE_NOWB = (
    """
import cftui.snapshots.create
cftui.snapshots.create._WRITE_BEHIND = False
"""
    + PY_CREATE
)

PY_EXTRACT = """
import sys
from pathlib import Path
from cftui.fleet import FleetHome
from cftui.snapshots import extract_snapshot
extract_snapshot(FleetHome(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
"""

PY_RESTORE = """
import sys
from cftui.fleet import FleetHome
from cftui.snapshots import restore_state
restore_state(FleetHome(sys.argv[1]), sys.argv[2], sys.argv[3])
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--full-restore", action="store_true", help="also time restore_state")
    parser.add_argument(
        "--write-behind-ab",
        action="store_true",
        help="also time the fsynced create without write-behind",
    )
    args = parser.parse_args()
    for tool in ("age", "tar"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is required")

    work = Path(tempfile.mkdtemp(prefix="cftui-bench-", dir="/tmp"))
    try:
        home = FleetHome(work / "fleet")
        init_bot(home, BOT)
        state = home.state_dir(BOT)
        t0 = time.perf_counter()
        total = generate(state, args.size_mb, args.files)
        print(
            f"data: {args.files} files, {total / 1e6:.0f} MB in {state} "
            f"(generated in {time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
        mb = total / 1e6
        key = home.snapshot_key(BOT)
        recipient = recipient_of(home, BOT)
        cli_file = work / "cli.tar.age"
        name_file = work / "name.txt"
        py = sys.executable
        env = dict(os.environ, PYTHONPATH=str(HERE.parent))
        best: dict[str, tuple[float, int]] = {}

        def keep(label: str, result: Sample) -> None:
            old = best.get(label)
            best[label] = (
                Sample(
                    min(result.wall, old.wall),
                    min(result.cpu, old.cpu),
                    max(result.rss_kib, old.rss_kib),
                )
                if old
                else result
            )
            print(
                f"  {label:<16} {result.wall:6.2f} s  {mb / result.wall:7.1f} MB/s  "
                f"cpu {result.cpu:6.2f} s  {result.rss_kib / 1024:6.1f} MB RSS",
                flush=True,
            )

        # Every restore extracts into a directory of its own, all removed at
        # the end: ext4 skips inodes freed in the last ~30 s when it allocates
        # (`recently_deleted`, the top of a kernel profile here), so removing
        # one side's tree just before the other side extracts makes the
        # second pay for the first.
        dests = itertools.count()

        def fresh_dest() -> Path:
            path = work / f"dest-{next(dests)}"
            path.mkdir()
            return path

        def create_cli() -> None:
            keep(
                "create cli",
                run(
                    f"tar -cf - -C '{state.parent}' state | age -r {recipient} > '{cli_file}'",
                    shell=True,
                ),
            )

        def create_cftui() -> None:
            for f in home.snapshots_dir(BOT).glob("bench--*"):
                f.unlink()
            cmd = [py, "-c", PY_CREATE, str(home.root), BOT, str(name_file)]
            keep("create cftui", run(cmd, env=env))
            for f in home.snapshots_dir(BOT).glob("bench--*"):
                f.unlink()
            cmd[2] = PY_CREATE_NOSYNC
            keep("create no fsync", run(cmd, env=env))
            if args.write_behind_ab:
                for f in home.snapshots_dir(BOT).glob("bench--*"):
                    f.unlink()
                cmd[2] = PY_CREATE_NOWB
                keep("create no w-behind", run(cmd, env=env))

        def restore_cli() -> None:
            cmd = f"age -d -i '{key}' '{cli_file}' | tar -xf - -C '{fresh_dest()}'"
            keep("restore cli", run(cmd, shell=True))

        def restore_cftui() -> None:
            snap = home.snapshots_dir(BOT) / name_file.read_text().strip()
            cmd = [py, "-c", PY_EXTRACT, str(home.root), BOT, str(snap), str(fresh_dest())]
            keep("restore cftui", run(cmd, env=env))

        for r in range(args.rounds):
            print(f"round {r + 1}", flush=True)
            # Alternate who goes first: the disk is shared and its load drifts.
            pairs = ((create_cli, create_cftui), (restore_cli, restore_cftui))
            for first, second in pairs:
                if r % 2:
                    first, second = second, first
                first()
                second()
        if args.full_restore:
            snap_name = name_file.read_text().strip()
            cmd = [py, "-c", PY_RESTORE, str(home.root), BOT, snap_name]
            keep("full restore", run(cmd, env=env))

        print()
        print(
            "best of each (wall and CPU separately; RSS is the highest seen)\n"
            f"{'':8} {'cli MB/s':>9} {'cftui MB/s':>11} {'wall ratio':>11} "
            f"{'cli cpu s':>10} {'cftui cpu s':>12} {'cpu ratio':>10} {'cli RSS':>8} {'cftui RSS':>10}"
        )
        rows = [
            ("create", "create cftui"),
            ("(nosync)", "create no fsync"),
            ("(no w-b)", "create no w-behind"),
            ("restore", "restore cftui"),
        ]
        for op, ours in rows:
            if ours not in best:
                continue
            c = best[f"{'restore' if op == 'restore' else 'create'} cli"]
            o = best[ours]
            print(
                f"{op:8} {mb / c.wall:9.1f} {mb / o.wall:11.1f} {c.wall / o.wall:10.2f}x "
                f"{c.cpu:10.2f} {o.cpu:12.2f} {c.cpu / o.cpu:9.2f}x "
                f"{c.rss_kib / 1024:6.1f}MB {o.rss_kib / 1024:8.1f}MB"
            )
        if "full restore" in best:
            full = best["full restore"]
            print(
                f"full restore (safety snapshot + extract + swap + syncfs): "
                f"{full.wall:.1f} s, cpu {full.cpu:.1f} s"
            )
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
