"""Helpers for the image tests: containers and networks of the test's own,
named with a random suffix and removed at the end, and small waits."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest

PREFIX = "cftest-img-"
LABEL = "io.clawfactory.test"


class Sandbox:
    """Containers and networks a test creates, all removed at the end."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.tag = secrets.token_hex(4)
        self.containers: list[Any] = []
        self.networks: list[Any] = []

    def name(self, what: str) -> str:
        return f"{PREFIX}{self.tag}-{what}"

    def network(self, what: str, *, internal: bool = False) -> Any:
        net = self.client.networks.create(
            self.name(what), driver="bridge", internal=internal, labels={LABEL: self.tag}
        )
        self.networks.append(net)
        return net

    def run(self, image: str, what: str, **kwargs: Any) -> Any:
        kwargs.setdefault("labels", {})[LABEL] = self.tag
        container = self.client.containers.run(image, name=self.name(what), detach=True, **kwargs)
        self.containers.append(container)
        return container

    def close(self) -> None:
        for container in self.containers:
            with contextlib.suppress(Exception):
                container.remove(force=True)
        for net in self.networks:
            with contextlib.suppress(Exception):
                net.remove()


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


def published_port(container: Any, port: str) -> int:
    container.reload()
    bindings = container.attrs["NetworkSettings"]["Ports"].get(port) or []
    assert bindings, f"{port} is not published"
    return int(bindings[0]["HostPort"])


def container_ip(container: Any, network: Any) -> str:
    container.reload()
    return container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
