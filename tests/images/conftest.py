"""Fixtures for the image tests: every service image built once (the build
cache makes reruns fast), and containers/networks of the test's own that are
removed whatever happens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cftui.runtime.images import catalog, services
from tests.images.imgkit import Sandbox


@pytest.fixture(scope="session")
def service_images(docker_client: Any) -> dict[str, str]:
    """Every service image, built (or found up to date) once per session."""
    return {svc: services.ensure_image(docker_client, svc) for svc in catalog.SERVICE_IMAGES}


@pytest.fixture
def sandbox(docker_client: Any) -> Iterator[Sandbox]:
    box = Sandbox(docker_client)
    try:
        yield box
    finally:
        box.close()
