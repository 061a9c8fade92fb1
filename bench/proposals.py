"""`cftui proposals` on a big tree, next to `git status` on the same tree,
and next to the scan of an earlier revision (the baseline) on a copy of it.

    .venv/bin/python bench/proposals.py [--files 50000] [--changed 100] [--rounds 5]
                                        [--baseline 147bb90]

Makes a fleet home under /tmp (removed afterwards) with one bot whose
approved `code/` holds FILES small text files in a two-level tree, seeds
its proposals tree, lets a first scan record the stat cache (as any scan
after the bot has run for a moment would), then changes CHANGED files in
the proposals (half edited, a quarter added, a quarter removed) and times:

  scan                cftui.proposals.scan.scan, the commit reader included,
                      in a process of its own (warm, its heap fresh)
  scan after an edit  the same, each round right after one more file was
                      edited (and the racy window waited out): a directory
                      judged again, the rest replayed
  cftui proposals     the command, `--json`, as a fresh process
  git status          `git status --porcelain` in the same tree, on its own
                      index after one warming run (untracked files listed)
  baseline scan       BASELINE's `cftui.proposals.scan.scan` (its package
                      taken with `git archive`) on a copy of the same home,
                      in its own process the same way (issue 17 last
                      measured it at 2,318 ms beside git status's 417 ms:
                      5.55x, on a loaded machine)

Each is run ROUNDS times alternating the order; the median is printed, with
the ratio to git status and to the baseline. The seed and the first
(cache-filling) scan are timed once and printed too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cftui.botinit import init_bot  # noqa: E402
from cftui.fleet import FleetHome  # noqa: E402
from cftui.proposal_tree import seed, stat_cache  # noqa: E402
from cftui.proposals import scan  # noqa: E402

BOT = "bench"
BASELINE = "147bb90"  # main before the per-directory records (issue 17's 5.5x)
# A scan's own process: warmed (its cache filled), then one timed scan per
# line read, so that its rounds alternate with the others'.
SCAN_SCRIPT = """
import sys, time
from pathlib import Path
from cftui.fleet import FleetHome
from cftui.proposals import scan
home = FleetHome(Path(sys.argv[1]))
scan.scan(home, "bench"); time.sleep(0.2); scan.scan(home, "bench")
print("ready", flush=True)
for _ in sys.stdin:
    started = time.perf_counter(); scan.scan(home, "bench")
    print(time.perf_counter() - started, flush=True)
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), "-c", "user.name=b", "-c", "user.email=b@x.invalid", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def make_source(src: Path, files: int) -> None:
    (src / "Dockerfile").parent.mkdir(parents=True)
    (src / "Dockerfile").write_text("FROM scratch\n")
    per_dir = 100
    for i in range(files - 1):
        d = (
            src
            / "workspace"
            / f"d{i // (per_dir * per_dir):02d}"
            / f"s{(i // per_dir) % per_dir:02d}"
        )
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.md").write_text(f"# file {i}\n" + "line of text\n" * (i % 7 + 1))
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "big tree")


def change(tree: Path, changed: int) -> None:
    paths = sorted(p for p in (tree / "workspace").rglob("*.md"))
    step = len(paths) // changed
    picks = paths[::step][:changed]
    for n, path in enumerate(picks):
        if n % 4 == 0:
            path.unlink()
        elif n % 4 == 1:
            path.with_name("new-" + path.name).write_text("added\n")
        else:
            path.write_text(path.read_text() + "edited\n")


class ScanProcess:
    """A revision's scan in a process of its own (a fresh heap, as the CLI
    has; the bench's own holds every path it made), warmed."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def scan(self) -> float:
        """One timed scan, as the baseline's process measured it."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("scan\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def scan_process(package: Path, home: Path) -> ScanProcess | None:
    """The scan of the `cftui` package under `package`, on `home`."""
    path = os.pathsep.join([str(package), str(HERE.parent / "proxies")])
    proc = subprocess.Popen(
        [sys.executable, "-c", SCAN_SCRIPT, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.wait()
        return None
    return ScanProcess(proc)


def baseline(rev: str, home: FleetHome, work: Path) -> ScanProcess | None:
    """Revision `rev`'s package (by `git archive`) scanning a copy of `home`,
    warmed; None when the revision cannot be had (outside a git checkout)."""
    pkg = work / "baseline"
    pkg.mkdir()
    try:
        archive = subprocess.run(
            ["git", "-C", str(HERE.parent), "archive", rev, "cftui"],
            check=True,
            capture_output=True,
        ).stdout
    except (subprocess.CalledProcessError, OSError):
        return None
    subprocess.run(["tar", "-x", "-C", str(pkg)], input=archive, check=True)
    copy = work / "baseline-home"
    subprocess.run(["cp", "-a", str(home.root), str(copy)], check=True)
    return scan_process(pkg, copy)


def edit_one(tree: Path, n: int) -> None:
    """One more proposal: a file edited (its directory judged again)."""
    paths = sorted((tree / "workspace").rglob("f*.md"))
    path = paths[(n * 7919) % len(paths)]
    path.write_text(path.read_text() + f"edit {n}\n")
    time.sleep(2 * stat_cache.RACY_NS / 1e9)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--changed", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", default=BASELINE, help="the git revision to compare with")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cftui-bench-proposals-"))
    try:
        src = work / "src"
        print(f"making {args.files} files …", file=sys.stderr)
        make_source(src, args.files)
        home = FleetHome(work / "home")
        init_bot(home, BOT, code=str(src))
        seed_s = timed(lambda: seed.seed(home, BOT))
        tree = home.proposals_dir(BOT)
        time.sleep(2 * stat_cache.RACY_NS / 1e9)
        first_s = timed(lambda: scan.scan(home, BOT))
        change(tree, args.changed)
        git(tree, "status", "--porcelain")  # git's own warm-up: its index refreshed
        time.sleep(2 * stat_cache.RACY_NS / 1e9)
        found = scan.scan(home, BOT)  # ours: the cache refreshed for the edits
        assert len(found.changes) == args.changed, len(found.changes)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), *sys.path])}
        cli = [sys.executable, "-m", "cftui", "--home", str(home.root), "proposals", BOT, "--json"]
        print(f"baseline {args.baseline} on a copy …", file=sys.stderr)
        old = baseline(args.baseline, home, work)
        new = scan_process(HERE.parent, home.root)
        assert new is not None
        runs: dict[str, list[float]] = {
            "scan": [],
            "cftui proposals": [],
            "git status": [],
        }
        old_name = f"baseline scan {args.baseline}"
        if old is not None:
            runs[old_name] = []
        for r in range(args.rounds):
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            for name in order:
                if name == old_name:
                    assert old is not None
                    runs[name].append(old.scan())
                    continue
                if name == "scan":
                    runs[name].append(new.scan())
                    continue
                if name == "git status":
                    fn = lambda: git(tree, "status", "--porcelain")  # noqa: E731
                else:
                    fn = lambda: subprocess.run(cli, check=True, capture_output=True, env=env)  # noqa: E731
                runs[name].append(timed(fn))
        after_edit = []
        for r in range(args.rounds):
            edit_one(tree, r)
            after_edit.append(new.scan())
        runs["scan after an edit"] = after_edit
        new.close()
        if old is not None:
            old.close()
        base = statistics.median(runs["git status"])
        old_med = statistics.median(runs[old_name]) if old is not None else None
        print(f"tree: {args.files} files, {args.changed} changed; rounds: {args.rounds}")
        print(f"seed (copy + own git + stat cache): {seed_s * 1000:.0f} ms")
        print(f"first scan after seed (fills the cache): {first_s * 1000:.0f} ms")
        print(f"{'measure':<22} {'median':>10} {'vs git status':>14} {'vs baseline':>12}")
        for name, values in runs.items():
            med = statistics.median(values)
            vs_old = f"{med / old_med:>11.2f}x" if old_med else f"{'-':>12}"
            print(f"{name:<22} {med * 1000:>8.0f} ms {med / base:>13.2f}x {vs_old}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
