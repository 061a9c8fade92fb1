"""Which images the project builds, what they are called and labelled, and
where each is built from: the one list every builder and caller reads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cftui.errors import RuntimeOperationError

SERVICE_IMAGES = {
    "front": "clawfactory/front",
    "llm-proxy": "clawfactory/llm-proxy",
    "egress": "clawfactory/mitm",
    "fake-llm": "clawfactory/fake-llm",
    "demo-agent": "clawfactory/demo-agent",
}
# Bases built from the project's own Dockerfiles, on demand: when a bot's
# Dockerfile names one in a FROM. They are the only builds of a gateway's
# chain that get a network (npm), and only the project writes them.
PROJECT_BASES = {
    "openclaw-base": "clawfactory/openclaw-base",
}
BASE_IMAGE = "clawfactory/base:bookworm"
# Debian's nodejs and npm, for the one-shot install of a bot's declared
# dependencies (cftui/runtime/docker/install.py): built from images/installer/
# only when some bot declares dependencies, so a fleet without pays nothing.
INSTALLER_IMAGE = "clawfactory/installer:latest"
TAG = "latest"

# One label set by the build (the classic builder turns each label into a
# step of its own, seconds each on fuse-overlayfs); the service name is a
# LABEL in each Dockerfile.
HASH_LABEL = "io.clawfactory.context-hash"
SERVICE_LABEL = "io.clawfactory.image"
# Which bot a gateway image was built for; inherited by any image built FROM it.
GATEWAY_LABEL = "io.clawfactory.gateway"

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class ServiceSource:
    """Where a service image is built from: its context, and the extra of
    `clawfactory-proxies` it installs from wheels (None: no wheels)."""

    context: Path
    extra: str | None


def source_root() -> Path:
    """The checkout whose `images/` and `proxies/` the images are built from.

    `CLAWFACTORY_SOURCE` overrides it (an installed cftui has no `images/`).
    """
    root = Path(os.environ.get("CLAWFACTORY_SOURCE") or REPO_ROOT)
    if not (root / "images").is_dir() or not (root / "proxies" / "pyproject.toml").is_file():
        raise RuntimeOperationError(
            f"cannot build images: no images/ and proxies/ under {root} "
            "(set CLAWFACTORY_SOURCE to a ClawFactory checkout)"
        )
    return root


def service_sources(root: Path | None = None) -> dict[str, ServiceSource]:
    root = root or source_root()
    return {
        "front": ServiceSource(root / "images" / "front", None),
        "llm-proxy": ServiceSource(root / "images" / "llm-proxy", "llm"),
        "egress": ServiceSource(root / "images" / "egress", "egress"),
        "fake-llm": ServiceSource(root / "images" / "fake-llm", "fake"),
        "demo-agent": ServiceSource(root / "cftui" / "templates" / "demo-agent", None),
        "openclaw-base": ServiceSource(root / "images" / "openclaw-base", None),
    }


def project_image(service: str) -> str | None:
    """The image a service or project base is built as; None for an unknown name."""
    return SERVICE_IMAGES.get(service) or PROJECT_BASES.get(service)


def gateway_image_name(bot: str) -> str:
    return f"clawfactory/gateway-{bot}:{TAG}"


def project_base_service(ref: str) -> str | None:
    """The PROJECT_BASES entry a FROM reference names, if any."""
    name, _, tag = ref.partition(":")
    for service, image in PROJECT_BASES.items():
        if name == image and tag in ("", TAG):
            return service
    return None
