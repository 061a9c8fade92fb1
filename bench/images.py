"""What image handling costs a fleet start: the up-to-date check that every
`up` pays (each service image, and N bots' gateways), and a rebuild after a
code change. Side by side with the issue's budget for a whole fleet start
with images cached (10 bots healthy in 30 s).

    .venv/bin/python bench/images.py [--bots 10] [--rebuild]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import docker

from cftui.runtime.images import base_image, catalog, gateway, services

FLEET_START_BUDGET_S = 30.0


def timed(fn, repeat: int = 5) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bots", type=int, default=10)
    parser.add_argument("--rebuild", action="store_true", help="also time code-change rebuilds")
    args = parser.parse_args()
    client = docker.from_env(timeout=300)
    for service in catalog.SERVICE_IMAGES:
        services.ensure_image(client, service)
    base = base_image.ensure_base_image(client)

    check_services = timed(
        lambda: [services.ensure_image(client, s) for s in ("front", "llm-proxy", "egress")]
    )
    tmp = Path(tempfile.mkdtemp(prefix="cf-bench-images-"))
    bots = [f"benchimg{i}" for i in range(args.bots)]
    try:
        for bot in bots:
            code = tmp / bot
            shutil.copytree(catalog.REPO_ROOT / "cftui" / "templates" / "demo-agent", code)
        started = time.perf_counter()
        for bot in bots:
            gateway.build_gateway_image(client, bot, tmp / bot)
        first_builds = time.perf_counter() - started
        check_gateways = timed(
            lambda: [gateway.build_gateway_image(client, b, tmp / b) for b in bots]
        )
        per_fleet = check_services * args.bots + check_gateways
        print(f"base image: {base}")
        print(f"up-to-date check, front+llm-proxy+egress: {check_services * 1000:.1f} ms per bot")
        print(
            f"up-to-date check, {args.bots} gateways: {check_gateways * 1000:.1f} ms "
            f"(first build of {args.bots} gateways from one context: {first_builds:.1f} s)"
        )
        print(
            f"image checks for a {args.bots}-bot fleet start: {per_fleet * 1000:.0f} ms = "
            f"{per_fleet / FLEET_START_BUDGET_S:.1%} of the {FLEET_START_BUDGET_S:.0f} s budget"
        )
        if args.rebuild:
            started = time.perf_counter()
            services.ensure_image(client, "llm-proxy", rebuild=True)
            print(f"llm-proxy rebuild after a code change: {time.perf_counter() - started:.1f} s")
            (tmp / bots[0] / "agent.py").write_text(
                (tmp / bots[0] / "agent.py").read_text() + "\n# changed\n"
            )
            started = time.perf_counter()
            gateway.build_gateway_image(client, bots[0], tmp / bots[0])
            print(f"gateway rebuild after a code change: {time.perf_counter() - started:.1f} s")
    finally:
        for bot in bots:
            with contextlib.suppress(docker.errors.DockerException):
                client.images.remove(catalog.gateway_image_name(bot), force=True)
        shutil.rmtree(tmp, ignore_errors=True)
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
