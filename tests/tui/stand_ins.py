"""Stand-in stacks on the real Docker engine for the TUI's tests: containers
with the runtime's names and labels running `sleep`, so that the engine
reports a bot's services as running (and `docker exec` reaches a shell in
them) without the minutes of image builds a real start costs. Each carries
the test's own label, so a test removes only what it made."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cftui.runtime.docker.spec import LABEL_BOT, LABEL_SERVICE, container_name
from cftui.runtime.status import SERVICES

TEST_LABEL = "io.clawfactory.test"
IMAGE = "clawfactory/fake-llm:latest"  # any image with `sleep` and `sh`


def stand_in_stack(
    client: Any, bot: str, tag: str, services: Iterable[str] = SERVICES
) -> list[Any]:
    """Start `bot`'s services (all four by default) as stand-ins."""
    return [
        client.containers.run(
            IMAGE,
            entrypoint=["sleep", "600"],
            name=container_name(bot, service),
            labels={LABEL_BOT: bot, LABEL_SERVICE: service, TEST_LABEL: tag},
            healthcheck={"test": ["NONE"]},
            init=True,  # `sleep` as pid 1 would ignore the stop's SIGTERM for 10 s
            detach=True,
        )
        for service in services
    ]


def remove_stand_ins(client: Any, tag: str) -> None:
    for container in client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={tag}"}):
        container.remove(force=True)
