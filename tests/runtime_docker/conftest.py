"""The Docker world a test module shares: its home, network and fake provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .helpers import World, destroy_world, make_world


@pytest.fixture(scope="module")
def world(docker_client: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = make_world(docker_client, tmp_path_factory.mktemp("docker"))
    try:
        yield w
    finally:
        destroy_world(w)
