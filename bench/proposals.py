"""`cftui proposals` on a big tree, next to `git status` on the same tree,
and next to the scan of an earlier revision (the baseline) on a copy of it.

    .venv/bin/python bench/proposals.py [--files 50000] [--changed 100] [--rounds 5]
                                        [--baseline 147bb90]

Makes a fleet home under /tmp (removed afterwards) with one bot whose
approved `code/` holds FILES small text files in a two-level tree, seeds
its proposals tree, lets a first scan record the stat cache (as any scan
after the bot has run for a moment would), then changes CHANGED files in
the proposals (half edited, a quarter added, a quarter removed) and times:

  scan (in-process)   cftui.proposals.scan.scan, the commit reader included
  scan after an edit  the same, each round right after one more file was
                      edited (and the racy window waited out): a directory
                      judged again, the rest replayed
  cftui proposals     the command, `--json`, as a fresh process
  git status          `git status --porcelain` in the same tree, on its own
                      index after one warming run (untracked files listed)
  baseline scan       BASELINE's `cftui.proposals.scan.scan` (its package
                      taken with `git archive`) on a copy of the same home,
                      timed in its own process the same way (issue 17 last
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
# Run in the baseline's own process: its scan, warmed once, timed ROUNDS times.
BASELINE_SCRIPT = """
import statistics, sys, time
from pathlib import Path
from cftui.fleet import FleetHome
from cftui.proposals import scan
home, rounds = FleetHome(Path(sys.argv[1])), int(sys.argv[2])
scan.scan(home, "bench"); time.sleep(0.2); scan.scan(home, "bench")
times = []
for _ in range(rounds):
    started = time.perf_counter(); scan.scan(home, "bench")
    times.append(time.perf_counter() - started)
print(statistics.median(times))
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


def baseline_scan(rev: str, home: FleetHome, work: Path, rounds: int) -> float | None:
    """The median scan of revision `rev` on a copy of `home` (None when the
    revision cannot be had, e.g. outside a git checkout)."""
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
    path = os.pathsep.join([str(pkg), str(HERE.parent / "proxies")])
    out = subprocess.run(
        [sys.executable, "-c", BASELINE_SCRIPT, str(copy), str(rounds)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    ).stdout
    shutil.rmtree(copy, ignore_errors=True)
    return float(out.strip().splitlines()[-1])


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
        old = baseline_scan(args.baseline, home, work, args.rounds)
        runs: dict[str, list[float]] = {
            "scan (in-process)": [],
            "cftui proposals": [],
            "git status": [],
        }
        for r in range(args.rounds):
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            for name in order:
                if name == "git status":
                    fn = lambda: git(tree, "status", "--porcelain")  # noqa: E731
                elif name == "cftui proposals":
                    fn = lambda: subprocess.run(cli, check=True, capture_output=True, env=env)  # noqa: E731
                else:
                    fn = lambda: scan.scan(home, BOT)  # noqa: E731
                runs[name].append(timed(fn))
        after_edit = []
        for r in range(args.rounds):
            edit_one(tree, r)
            after_edit.append(timed(lambda: scan.scan(home, BOT)))
        runs["scan after an edit"] = after_edit
        base = statistics.median(runs["git status"])
        print(f"tree: {args.files} files, {args.changed} changed; rounds: {args.rounds}")
        print(f"seed (copy + own git + stat cache): {seed_s * 1000:.0f} ms")
        print(f"first scan after seed (fills the cache): {first_s * 1000:.0f} ms")
        print(f"{'measure':<22} {'median':>10} {'vs git status':>14} {'vs baseline':>12}")
        if old is not None:
            runs[f"baseline scan {args.baseline}"] = [old]
        for name, values in runs.items():
            med = statistics.median(values)
            vs_old = f"{med / old:>11.2f}x" if old else f"{'-':>12}"
            print(f"{name:<22} {med * 1000:>8.0f} ms {med / base:>13.2f}x {vs_old}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
