"""How long a `cftui` command takes to answer, beside a bare interpreter
start (`python -c pass`) in the same run, as ratios (issue #23's goals:
`cftui --version` and `cftui list` within 3x a bare start).

Each command runs as the console script does (`from cftui.cli import main`)
in a fresh interpreter, the runs of all commands interleaved so that a
busy moment of the machine falls on all of them alike. `list` and `status
--json` run on a throwaway home of 20 bots against the real Docker engine:
once with no containers of theirs (the engine's listing answers with none),
once with each bot's four containers made but not started (`docker create`
of a small image, labelled as the runtime labels them: one listing and 80
inspects, as for a fleet of 20 stopped stacks), and once with no engine.

Bytecode: the package's modules are compiled once (`__pycache__`, as an
installed package has them) before the runs; `--no-bytecode` runs them
from source every time (`PYTHONDONTWRITEBYTECODE` and no cache, as session
6 measured).

    .venv/bin/python bench/startup.py [--runs 20] [--bots 20] [--no-bytecode]
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL = 3.0
CONSOLE_SCRIPT = "import sys; from cftui.cli import main; sys.exit(main())"
SERVICES = ("gateway", "front", "llm-proxy", "egress")


def _env(home: Path, **extra: str) -> dict[str, str]:
    path = f"{REPO}{os.pathsep}{REPO / 'proxies'}"
    env = {**os.environ, "PYTHONPATH": path, "CLAWFACTORY_HOME": str(home), **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time, and the CPU time (user + system) the command used: on a
    machine others load, the CPU time still says what the command costs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _bytecode(compiled: bool) -> None:
    """The package's own bytecode: compiled now, or none at all."""
    for tree in (REPO / "cftui", REPO / "proxies" / "cfproxies"):
        if compiled:
            compileall.compile_dir(tree, quiet=1)
        else:
            for cache in tree.rglob("__pycache__"):
                shutil.rmtree(cache, ignore_errors=True)


@contextlib.contextmanager
def _stacks(names: list[str]) -> Iterator[bool]:
    """Each bot's four containers, created and not started, under the
    runtime's labels and names (removed at the end); False when the engine
    or a small image is not there."""
    from cftui.runtime.docker.names import LABEL_BOT, LABEL_SERVICE, container_name

    image = "clawfactory/front:latest"
    made: list[str] = []
    try:
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
            yield False
            return
        for bot in names:
            for svc in SERVICES:
                name = container_name(bot, svc)
                subprocess.run(
                    ["docker", "create", "--name", name, "--label", f"{LABEL_BOT}={bot}",
                     "--label", f"{LABEL_SERVICE}={svc}", image],
                    check=True, capture_output=True,
                )  # fmt: skip
                made.append(name)
        yield True
    finally:
        for start in range(0, len(made), 40):
            subprocess.run(["docker", "rm", "-f", *made[start : start + 40]], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--bots", type=int, default=20)
    parser.add_argument("--no-bytecode", action="store_true", help="modules from source each run")
    args = parser.parse_args()
    py = sys.executable
    _bytecode(not args.no_bytecode)
    with tempfile.TemporaryDirectory(prefix="cf-bench-startup-") as tmp:
        home = Path(tmp) / "fleet"
        env = _env(home)
        if args.no_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        names = [f"cfbs{os.getpid()}x{n}" for n in range(args.bots)]
        for name in names:
            subprocess.run(
                [py, "-c", CONSOLE_SCRIPT, "init", name],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        no_engine = {**env, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
        cli = [py, "-c", CONSOLE_SCRIPT]
        n = args.bots
        cases: list[tuple[str, list[str], dict[str, str]]] = [
            ("python -c pass (baseline)", [py, "-c", "pass"], env),
            ("cftui --version", [*cli, "--version"], env),
            ("cftui --help", [*cli, "--help"], env),
            (f"cftui list ({n} bots, no engine)", [*cli, "list"], no_engine),
            (f"cftui list ({n} bots, Docker)", [*cli, "list"], env),
            (f"cftui status --json ({n} bots, Docker)", [*cli, "status", "--json"], env),
        ]
        times = _measure(cases, args.runs)
        with _stacks(names) as made:
            if made:
                stacked = [
                    (f"cftui list ({n} stopped stacks)", [*cli, "list"], env),
                    (f"cftui status --json ({n} stopped stacks)", [*cli, "status", "--json"], env),
                ]
                base = [cases[0]]
                more = _measure(base + stacked, args.runs)
                times.update({k: v for k, v in more.items() if k != cases[0][0]})
                # Each group's own baseline: the ratios compare like with like.
                times[f"{cases[0][0]}#2"] = more[cases[0][0]]
                cases += stacked
    load = os.getloadavg()[0]
    code = "from source" if args.no_bytecode else "bytecode cached"
    print(
        f"{args.runs} runs each, interleaved; load average {load:.1f}; {os.cpu_count()} CPUs; {code}"
    )
    print(f"{'command':<42} {'wall':>9} {'vs bare':>8}  {'CPU':>8} {'vs bare':>8}  goal (wall)")
    bare = cases[0][0]
    for name, _, _ in cases:
        # The stacks' rows against the baseline of their own interleaved run.
        base = times[f"{bare}#2"] if "stacks" in name and f"{bare}#2" in times else times[bare]
        wall, cpu = _medians(times[name])
        ratio, cpu_ratio = wall / _medians(base)[0], cpu / _medians(base)[1]
        goal = "" if name == bare else f"<= {GOAL:.0f}x " + ("met" if ratio <= GOAL else "NOT met")
        print(
            f"{name:<42} {wall * 1000:>7.1f}ms {ratio:>7.2f}x  {cpu * 1000:>6.1f}ms {cpu_ratio:>7.2f}x"
            f"  {goal}"
        )


def _medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _measure(
    cases: list[tuple[str, list[str], dict[str, str]]], runs: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for _ in range(2):  # warm the page cache and the engine's connection
        for _, argv, e in cases:
            _run(argv, e)
    for _ in range(runs):
        for name, argv, e in cases:
            times[name].append(_run(argv, e))
    return times


if __name__ == "__main__":
    main()
