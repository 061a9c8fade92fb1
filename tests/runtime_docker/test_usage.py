"""CPU and memory of a bot's containers from the real engine: one-shot
`stats(stream=False)` per service, the running ones only."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from cftui.fleet import BotConfig, FleetHome
from cftui.runtime.docker.runtime import DockerRuntime
from cftui.runtime.docker.spec import container_name

IMAGE = "clawfactory/fake-llm:latest"  # any of ours with a Python in it
MiB = 1024 * 1024


def test_usage_samples_the_running_services_of_a_bot(docker_client, tmp_path: Path) -> None:
    bot = f"usage{uuid.uuid4().hex[:8]}"
    label = {"io.clawfactory.test": bot}
    busy = docker_client.containers.run(
        IMAGE,
        entrypoint=["python3", "-c", "while True: pass"],
        name=container_name(bot, "gateway"),
        labels=label,
        mem_limit="256m",
        detach=True,
    )
    stopped = docker_client.containers.create(
        IMAGE, entrypoint=["true"], name=container_name(bot, "egress"), labels=label
    )
    runtime = DockerRuntime(FleetHome(tmp_path / "home"))  # its own client: aclose closes it
    try:
        usage = asyncio.run(runtime.usage(BotConfig(name=bot)))
        assert set(usage) == {"gateway"}  # egress exists but does not run; the rest are absent
        gw = usage["gateway"]
        assert gw.cpu_percent is not None and gw.cpu_percent > 1.0  # a busy loop
        assert gw.mem_limit == 256 * MiB and 0 < gw.mem_bytes < 256 * MiB
    finally:
        asyncio.run(runtime.aclose())
        for c in (busy, stopped):
            c.remove(force=True)
