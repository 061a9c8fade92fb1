"""How long `cf-llm-proxy` takes from exec to its first `/health` answer,
without a span endpoint and with one, beside the same start of another
checkout (`--baseline`, e.g. the main branch before spans existed) in the
same run, as ratios (issue #23: the OpenTelemetry SDK is imported only when
an endpoint is set, so a proxy without one pays nothing for it).

The runs of every case are interleaved, so a busy moment of the shared
machine falls on all of them alike. The endpoint is a closed loopback port:
the SDK is loaded and its exporter thread started, nothing is sent.

    .venv/bin/python bench/llm_proxy_startup.py [--runs 15] [--baseline /work/main]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from llm_proxy import bench_home, free_port, wait_up

REPO = Path(__file__).resolve().parent.parent


def _once(tree: Path, home: Path, extra: list[str]) -> float:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'proxies'}"}
    argv = [
        sys.executable,
        "-c",
        "import sys; from cfproxies.llm_proxy.__main__ import main; sys.exit(main())",
        "--listen",
        f"127.0.0.1:{port}",
        "--bot",
        "bench",
        "--audit-dir",
        str(home / "audit"),
        "--providers-env",
        str(home / "providers.env"),
        *extra,
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        asyncio.run(wait_up(f"http://127.0.0.1:{port}/health", proc))
        return time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(10)


MODULES = """
import sys
from cfproxies.llm_proxy.app import make_app
from cfproxies.llm_proxy.config import load_config
make_app(load_config(sys.argv[1:], {}))
print(len(sys.modules), sum(m.startswith("opentelemetry") for m in sys.modules))
"""


def modules(tree: Path, home: Path, extra: list[str]) -> tuple[int, int]:
    """(modules loaded, of them OpenTelemetry's) once the app is built: the
    figure a loaded machine cannot blur."""
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'proxies'}"}
    argv = ["--bot", "bench", "--audit-dir", str(home / "audit"), *extra]
    out = subprocess.run(
        [sys.executable, "-c", MODULES, *argv], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--baseline", type=Path, help="another checkout, started the same way")
    args = parser.parse_args()
    home = bench_home()
    dead = f"http://127.0.0.1:{free_port()}"
    cases: list[tuple[str, Path, list[str]]] = []
    if args.baseline:
        cases.append((f"baseline {args.baseline}, no endpoint", args.baseline, []))
    cases += [
        ("this checkout, no endpoint", REPO, []),
        ("this checkout, --otlp-endpoint", REPO, ["--otlp-endpoint", dead]),
    ]
    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    try:
        for _ in range(args.runs):
            for name, tree, extra in cases:
                times[name].append(_once(tree, home, extra))
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        raise
    first = statistics.median(times[cases[0][0]])
    print(f"cf-llm-proxy exec to first /health answer, median of {args.runs} (interleaved):")
    for name, tree, extra in cases:
        median = statistics.median(times[name])
        loaded, otel = modules(tree, home, extra)
        print(
            f"  {name:<44} {median * 1000:8.1f} ms  {median / first:5.2f}x   "
            f"{loaded} modules ({otel} opentelemetry)"
        )
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
