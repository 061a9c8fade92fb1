"""How long a `cftui` command takes to answer, beside a bare interpreter
start (`python -c pass`) in the same run, as ratios (issue #23's goals:
`cftui --version` and `cftui list` within 3x a bare start).

Each command runs as the console script does (`from cftui.cli import main`)
in a fresh interpreter, the runs of all commands interleaved so that a
busy moment of the machine falls on all of them alike. `list` runs on a
throwaway home of 3 bots that are not started, against the real Docker
engine (it asks it for their containers), and once with no engine (the
same command, minus the engine's answer).

    .venv/bin/python bench/startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL = 3.0
CONSOLE_SCRIPT = "import sys; from cftui.cli import main; sys.exit(main())"


def _env(home: Path, **extra: str) -> dict[str, str]:
    path = f"{REPO}{os.pathsep}{REPO / 'proxies'}"
    return {**os.environ, "PYTHONPATH": path, "CLAWFACTORY_HOME": str(home), **extra}


def _run(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="cf-bench-startup-") as tmp:
        home = Path(tmp) / "fleet"
        env = _env(home)
        for n in range(3):
            subprocess.run(
                [py, "-c", CONSOLE_SCRIPT, "init", f"cfbenchstart{os.getpid()}x{n}"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        no_engine = _env(home, DOCKER_HOST="unix:///nonexistent/docker.sock")
        cases: list[tuple[str, list[str], dict[str, str]]] = [
            ("python -c pass (baseline)", [py, "-c", "pass"], env),
            ("cftui --version", [py, "-c", CONSOLE_SCRIPT, "--version"], env),
            ("cftui --help", [py, "-c", CONSOLE_SCRIPT, "--help"], env),
            ("cftui list (3 bots, no engine)", [py, "-c", CONSOLE_SCRIPT, "list"], no_engine),
            ("cftui list (3 bots, Docker)", [py, "-c", CONSOLE_SCRIPT, "list"], env),
        ]
        times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
        for _ in range(2):  # warm the page cache and the engine's connection
            for _, argv, e in cases:
                _run(argv, e)
        for _ in range(args.runs):
            for name, argv, e in cases:
                times[name].append(_run(argv, e))
    base = statistics.median(times[cases[0][0]])
    load = os.getloadavg()[0]
    print(f"{args.runs} runs each, interleaved; load average {load:.1f}; {os.cpu_count()} CPUs")
    print(f"{'command':<34} {'median':>9} {'min':>9} {'vs bare':>8}  goal")
    for name, _, _ in cases:
        med = statistics.median(times[name])
        ratio = med / base
        goal = (
            ""
            if name.startswith("python")
            else f"<= {GOAL:.0f}x " + ("met" if ratio <= GOAL else "NOT met")
        )
        print(
            f"{name:<34} {med * 1000:>7.1f}ms {min(times[name]) * 1000:>7.1f}ms {ratio:>7.2f}x  {goal}"
        )


if __name__ == "__main__":
    main()
