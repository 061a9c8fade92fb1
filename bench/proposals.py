"""`cftui proposals` on a big tree, next to `git status` on the same tree.

    .venv/bin/python bench/proposals.py [--files 50000] [--changed 100] [--rounds 5]

Makes a fleet home under /tmp (removed afterwards) with one bot whose
approved `code/` holds FILES small text files in a two-level tree, seeds
its proposals tree, lets a first scan record the stat cache (as any scan
after the bot has run for a moment would), then changes CHANGED files in
the proposals (half edited, a quarter added, a quarter removed) and times:

  scan (in-process)   cftui.proposals.scan.scan, the commit reader included
  cftui proposals     the command, `--json`, as a fresh process
  git status          `git status --porcelain` in the same tree, on its own
                      index after one warming run (untracked files listed)

Each is run ROUNDS times alternating the order; the median is printed, with
the ratio to git status. The seed and the first (cache-filling) scan are
timed once and printed too.
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


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--changed", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
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
        base = statistics.median(runs["git status"])
        print(f"tree: {args.files} files, {args.changed} changed; rounds: {args.rounds}")
        print(f"seed (copy + own git + stat cache): {seed_s * 1000:.0f} ms")
        print(f"first scan after seed (fills the cache): {first_s * 1000:.0f} ms")
        print(f"{'measure':<22} {'median':>10} {'vs git status':>14}")
        for name, values in runs.items():
            med = statistics.median(values)
            print(f"{name:<22} {med * 1000:>8.0f} ms {med / base:>13.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
