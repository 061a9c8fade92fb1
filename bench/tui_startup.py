"""How long the TUI takes to put the fleet on screen (issue #23's goal: the
fleet painted within 0.5 s of launch for 20 bots), beside a bare
interpreter start (`python -c pass`) in the same run, as ratios.

The real `cftui` (as the console script runs it) is launched in a real
terminal (a tmux session of 120x40) on a throwaway fleet home of 20 Docker
bots, not started, against the real engine; the screen is read with
`capture-pane` until every bot's row is on it ("rows"), then until every
row's state has come from the engine ("statuses"). Floors measured the same
way: a shell printing one line in tmux (what the screen polling itself
costs), and a bare Textual app with a 20-row DataTable. The `--running 3`
variant gives three of the bots a running stack of stand-in containers
(the runtime's names and labels on a `sleep` process), so their rows need
the engine's answer about real containers.

    .venv/bin/python bench/tui_startup.py [--runs 10] [--running 3] [--before DIR]

Beside each median, the CPU time the launched process had used by the
mark (every thread): under load the wall times mostly measure the queue
for the two cores, the CPU time much less.

`--before DIR` adds the same launch of the cftui of another checkout (say
`git worktree add /tmp/cftui-main main`), interleaved with this one's, so
that a change is measured against the code before it under the same load.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GOAL_S = 0.5
BOTS = 20
CONSOLE_SCRIPT = "import sys; from cftui.cli import main; sys.exit(main())"
POLL_S = 0.01
LIMIT_S = 90  # a launch that shows nothing by then fails the run
# A tmux server of this run's own (not the one other users' sessions live
# in), kept up by one idle session between launches: a server that exits
# with its last session races the next launch.
SOCKET = f"cf-bench-tui-{os.getpid()}"


# The launches write bytecode, as an installed cftui has it: with a
# PYTHONDONTWRITEBYTECODE in the caller's environment (the tmux server passes
# its environment on to every launch) a fresh checkout, `--before`'s
# worktree say, compiled every module of its path at each launch.
TMUX_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def tmux(*args: str, check: bool = True) -> str:
    return subprocess.run(
        ["tmux", "-L", SOCKET, *args], check=check, capture_output=True, text=True, env=TMUX_ENV
    ).stdout


BARE_TEXTUAL = f"""
BOTS = {BOTS}
from textual.app import App
from textual.widgets import DataTable
class Bare(App):
    def compose(self):
        yield DataTable()
    def on_mount(self):
        t = self.query_one(DataTable)
        t.add_columns("Bot", "State")
        for i in range(BOTS):
            t.add_row(f"bare-{{i:02d}}", "ok")
Bare().run()
"""


def _env(home: Path, repo: Path = REPO) -> dict[str, str]:
    path = f"{repo}{os.pathsep}{repo / 'proxies'}"
    return {**os.environ, "PYTHONPATH": path, "CLAWFACTORY_HOME": str(home)}


def _screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session, check=False)


def _cpu_s(pid: int) -> float | None:
    """The CPU seconds (user and system, every thread) process `pid` has
    used: beside the wall time, the figure a loaded machine distorts least."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _launched(session: str) -> int | None:
    """The pid of the command the pane's shell runs (once it has started)."""
    shell = tmux("display-message", "-p", "-t", session, "#{pane_pid}", check=False).strip()
    try:
        children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def in_tmux(
    argv: list[str], env: dict[str, str], marks: dict[str, object]
) -> tuple[dict[str, float], dict[str, float]]:
    """Launch `argv` in a new tmux session; for each mark (a predicate on the
    screen's text), the seconds from launch until it first held, and the CPU
    seconds the launched process had used by then (where it could be read)."""
    session = f"cf-bench-tui-{os.getpid()}-{time.monotonic_ns()}"
    command = shlex.join(argv) + f"; sleep {LIMIT_S}"
    # Started in the checkout measured: `python -c` puts the current
    # directory first on sys.path, before PYTHONPATH, so from this one's
    # directory `--before` ran this checkout's cftui, not its own.
    checkout = env["PYTHONPATH"].split(os.pathsep)[0]
    options = ["-x", "120", "-y", "40", "-c", checkout]
    for key in ("PYTHONPATH", "CLAWFACTORY_HOME"):
        options += ["-e", f"{key}={env[key]}"]
    found: dict[str, float] = {}
    cpu: dict[str, float] = {}
    pid: int | None = None
    started = time.perf_counter()
    tmux("new-session", "-d", "-s", session, *options, command)
    try:
        while len(found) < len(marks) and time.perf_counter() - started < LIMIT_S:
            pid = pid or _launched(session)
            screen = _screen(session)
            now = time.perf_counter() - started
            used = _cpu_s(pid) if pid else None
            for name, holds in marks.items():
                if name not in found and holds(screen):  # type: ignore[operator]
                    found[name] = now
                    if used is not None:
                        cpu[name] = used
            time.sleep(POLL_S)
    finally:
        tmux("kill-session", "-t", session, check=False)
    missing = set(marks) - set(found)
    if missing:
        raise SystemExit(f"never on screen: {', '.join(sorted(missing))}\n{screen}")
    return found, cpu


def _bare_start(py: str) -> float:
    started = time.perf_counter()
    subprocess.run([py, "-c", "pass"], check=True)
    return time.perf_counter() - started


def _stand_in_stack(bot: str, label: str) -> list[str]:
    """Containers with the runtime's names and labels, running `sleep`: the
    engine reports the bot's stack as running (a real stack costs minutes
    of builds and starts and measures nothing more here)."""
    from cftui.runtime.docker.spec import container_name
    from cftui.runtime.status import SERVICES

    names = []
    for service in SERVICES:
        name = container_name(bot, service)
        subprocess.run(
            [
                "docker",
                "run",
                "-d",
                "--name",
                name,
                "--label",
                f"io.clawfactory.bot={bot}",
                "--label",
                f"io.clawfactory.service={service}",
                "--label",
                label,
                "--no-healthcheck",
                "--entrypoint",
                "sleep",
                "clawfactory/fake-llm:latest",
                "600",
            ],
            check=True,
            capture_output=True,
        )
        names.append(name)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--running", type=int, default=0, help="bots given a running stack")
    parser.add_argument("--before", type=Path, help="another checkout's cftui, measured alike")
    args = parser.parse_args()
    sys.path[:0] = [str(REPO), str(REPO / "proxies")]
    from cftui.botinit import init_bot
    from cftui.fleet import FleetHome

    py = sys.executable
    tag = f"tsu{os.getpid() % 100000}"
    names = [f"{tag}-{n:02d}" for n in range(BOTS)]
    containers: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cf-bench-tui-startup-") as tmp:
        home = FleetHome(Path(tmp) / "fleet")
        for name in names:
            init_bot(home, name)
        env = _env(home.root)
        tmux("new-session", "-d", "-s", "keep", "sleep 3600")
        try:
            for name in names[: args.running]:
                containers += _stand_in_stack(name, f"io.clawfactory.bench={tag}")

            def rows(screen: str) -> bool:
                return all(n in screen for n in names)

            def statuses(screen: str) -> bool:
                return (
                    rows(screen)
                    and "loading" not in screen
                    and (not args.running or screen.count("running") >= args.running)
                )

            cases: dict[str, tuple[list[str], dict[str, Any], dict[str, str]]] = {
                "tmux: a shell prints a line (floor of the method)": (
                    [py, "-c", "print('cf-bench-ready')"],
                    {"rows": lambda s: "cf-bench-ready" in s},
                    env,
                ),
                f"bare Textual app, DataTable of {BOTS} rows": (
                    [py, "-c", BARE_TEXTUAL],
                    {"rows": lambda s: f"bare-{BOTS - 1:02d}" in s},
                    env,
                ),
                f"cftui, {BOTS} bots ({args.running} running)": (
                    [py, "-c", CONSOLE_SCRIPT],
                    {"rows": rows, "statuses": statuses},
                    env,
                ),
            }
            if args.before:
                cases[f"cftui at {args.before}"] = (
                    [py, "-c", CONSOLE_SCRIPT],
                    {"rows": rows, "statuses": statuses},
                    _env(home.root, args.before.resolve()),
                )
            times: dict[str, list[float]] = {"python -c pass": []}
            cpu: dict[str, list[float]] = {}
            for case, (_argv, marks, _case_env) in cases.items():
                for mark in marks:
                    times[f"{case}: {mark}"] = []
                    cpu[f"{case}: {mark}"] = []
            for argv, marks, case_env in cases.values():  # the page cache, the engine, bytecode
                in_tmux(argv, case_env, marks)
            order = list(cases.items())
            for run in range(args.runs):  # interleaved: a busy moment falls on all alike
                times["python -c pass"].append(_bare_start(py))
                # Each case in each place of the run in turn, so that no case
                # always follows the same one (the bare app's exit, say).
                turn = run % len(order)
                for case, (argv, marks, case_env) in order[turn:] + order[:turn]:
                    at, used = in_tmux(argv, case_env, marks)
                    for mark in marks:
                        times[f"{case}: {mark}"].append(at[mark])
                        if mark in used:
                            cpu[f"{case}: {mark}"].append(used[mark])
        finally:
            tmux("kill-server", check=False)
            if containers:
                subprocess.run(["docker", "rm", "-f", *containers], capture_output=True)
    base = statistics.median(times["python -c pass"])
    load = os.getloadavg()[0]
    print(f"{args.runs} runs each, interleaved; load average {load:.1f}; {os.cpu_count()} CPUs")
    print(f"{'measure':<58} {'median':>9} {'min':>9} {'vs bare':>8} {'vs goal':>8} {'cpu':>8}")
    for name, values in times.items():
        med = statistics.median(values)
        cpus = cpu.get(name) or []
        cpu_text = f"{statistics.median(cpus) * 1000:>6.0f}ms" if cpus else f"{'-':>8}"
        print(
            f"{name:<58} {med * 1000:>7.0f}ms {min(values) * 1000:>7.0f}ms "
            f"{med / base:>7.1f}x {med / GOAL_S:>7.2f}x {cpu_text}"
        )
    print(f"goal: the fleet's rows on screen within {GOAL_S} s ('vs goal' <= 1.00 meets it)")
    print(
        "cpu: the launched process's CPU time (every thread, 10 ms ticks) by the mark, "
        "median: what a loaded machine distorts least"
    )


if __name__ == "__main__":
    main()
