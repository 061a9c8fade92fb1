"""The service images (`SERVICE_IMAGES`) and project bases
(`PROJECT_BASES`), built from the project's sources only when missing or
when their sources changed: a label holds the hash of what each was built
from, so a fleet start with images cached costs one `inspect` per image.

Shipped Dockerfiles start `FROM ${BASE_IMAGE}` with a public default
(`python:3.11-slim`, `nginx:1.27-bookworm`); when that image is neither here
nor pullable, the build falls back to `clawfactory/base:bookworm`
(`base_image`). The choice of base, and the refusal of what a Dockerfile
must not do, are shared with the gateway's build (`gateway`).

Every function here blocks (docker SDK, subprocesses): call it in a thread.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cftui.errors import RuntimeOperationError
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime.images import dockerfile
from cftui.runtime.images.base_image import ensure_base_image
from cftui.runtime.images.cache import cache_dir, file_lock
from cftui.runtime.images.catalog import (
    BASE_IMAGE,
    HASH_LABEL,
    PROJECT_BASES,
    SERVICE_IMAGES,
    TAG,
    ServiceSource,
    project_base_service,
    project_image,
    service_sources,
    source_root,
)
from cftui.runtime.images.engine import docker_build, image_attrs, image_available, image_labels
from cftui.runtime.images.hashing import tree_hash
from cftui.runtime.images.wheels import wheelhouse


def _proxies_roots(root: Path) -> list[Path]:
    proxies = root / "proxies"
    return [proxies / "pyproject.toml", proxies / "cfproxies"]


def _service_hash(source: ServiceSource, root: Path) -> str:
    """The label of a service image: its context, plus the proxies' sources
    for a service that installs them."""
    roots = [source.context]
    if source.extra:
        roots += _proxies_roots(root)
    return tree_hash(*roots, salt=f"extra={source.extra}")


def parse_dockerfile(text: str, what: str) -> tuple[list[dockerfile.Instruction], str]:
    """A Dockerfile's instructions and escape character; one line naming `what`
    when the engine would refuse it."""
    try:
        return dockerfile.parse(text)
    except dockerfile.DockerfileError as exc:
        raise RuntimeOperationError(f"{what}: {exc}") from None


def dockerfile_base_default(path: Path) -> tuple[bool, str | None]:
    """(declares ARG BASE_IMAGE, its default) for a Dockerfile."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return dockerfile.base_arg_default(parse_dockerfile(text, str(path))[0])


def inert(text: str, limit: int = 120) -> str:
    """Agent-written text made safe for one line of an error message."""
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def refuse_remote_sources(found: list[dockerfile.RemoteSource], where: str, what: str) -> None:
    """One line naming the first ADD the daemon would fetch itself, if any."""
    if not found:
        return
    first = found[0]
    line = f" line {first.line}" if first.line else ""
    raise RuntimeOperationError(
        f"cannot build {what}: {where}{line}: ADD from {first.why} ({inert(first.source)}) "
        "is refused (dockerd would fetch it on the host's network); put the file in "
        "code/ and COPY it"
    )


def choose_base(
    client: Any,
    instructions: list[dockerfile.Instruction],
    progress: Progress,
    task: str,
    what: str,
    *,
    check_onbuild: bool = False,
) -> dict[str, str]:
    """Build args that make the build possible here: {} when every FROM image
    is available, BASE_IMAGE=clawfactory/base:bookworm when the default base
    is not; a clear error when a needed image cannot be had. A project base
    (PROJECT_BASES) is built from images/ first. `check_onbuild`: refuse a
    base whose ONBUILD triggers would fetch from a URL."""
    declares, default = dockerfile.base_arg_default(instructions)
    buildargs: dict[str, str] = {}
    for ref in dockerfile.from_images(instructions, default):
        project = project_base_service(ref)
        if project is not None:
            ensure_image(client, project, progress)
        elif image_available(client, ref, progress):
            pass
        elif declares and ref == default:
            progress(
                ProgressEvent(task, message=f"{ref} cannot be pulled: building on {BASE_IMAGE}")
            )
            buildargs["BASE_IMAGE"] = ensure_base_image(client, progress)
            continue
        else:
            raise RuntimeOperationError(
                f"cannot build {what}: its Dockerfile needs {inert(ref)}, which is not on this "
                f"machine and cannot be pulled; declare `ARG BASE_IMAGE={inert(ref)}` and "
                f"`FROM ${{BASE_IMAGE}}` so cftui can build it on {BASE_IMAGE}, or `docker load` it"
            )
        if check_onbuild:
            attrs = image_attrs(client, ref) or {}
            triggers = list((attrs.get("Config") or {}).get("OnBuild") or [])
            found = dockerfile.onbuild_remote_sources(triggers)
            refuse_remote_sources(found, f"the ONBUILD triggers of {inert(ref)}", what)
    return buildargs


def _known(service: str) -> str:
    """The image a service or project base is built as; one line for an unknown name."""
    image = project_image(service)
    if image is None:
        known = ", ".join([*SERVICE_IMAGES, *PROJECT_BASES])
        raise RuntimeOperationError(f"unknown service image {service!r}: one of {known}")
    return image


def _current(client: Any, tag: str, want: str) -> bool:
    labels = image_labels(client, tag)
    return labels is not None and labels.get(HASH_LABEL) == want


def image_current(client: Any, service: str) -> bool:
    """Whether the service's image is here, built from its sources as they are."""
    image = _known(service)
    root = source_root()
    return _current(client, f"{image}:{TAG}", _service_hash(service_sources(root)[service], root))


def wheel_extra(service: str) -> str | None:
    """The extra of `clawfactory-proxies` whose wheels the image installs, if any."""
    _known(service)
    return service_sources()[service].extra


def needs_fallback_base(client: Any, service: str, progress: Progress = no_progress) -> bool:
    """Whether building the service will take `clawfactory/base:bookworm`
    (`default_base_missing` on its Dockerfile)."""
    _known(service)
    path = service_sources()[service].context / "Dockerfile"
    text = path.read_text(encoding="utf-8", errors="replace")
    return default_base_missing(client, text, str(path), progress)


def default_base_missing(
    client: Any, text: str, what: str, progress: Progress = no_progress
) -> bool:
    """Whether a Dockerfile's build will fall back to `clawfactory/base:bookworm`:
    its `ARG BASE_IMAGE` default is a FROM that is neither here nor
    pullable (the pull is tried once and its failure remembered, so the
    build does not try again). A forecast for scheduling only: the build
    itself still decides (`choose_base`)."""
    instructions, _ = parse_dockerfile(text, what)
    declares, default = dockerfile.base_arg_default(instructions)
    if not declares or default is None or project_base_service(default) is not None:
        return False
    if default not in dockerfile.from_images(instructions, default):
        return False
    return not image_available(client, default, progress)


def ensure_image(
    client: Any, service: str, progress: Progress = no_progress, *, rebuild: bool = False
) -> str:
    """The image of a service (`SERVICE_IMAGES`) or project base
    (`PROJECT_BASES`), built from the project's sources if missing or stale."""
    image = _known(service)
    root = source_root()
    source = service_sources(root)[service]
    tag = f"{image}:{TAG}"
    want = _service_hash(source, root)
    if not rebuild and _current(client, tag, want):
        return tag
    task = f"image {service}"
    with file_lock(image.replace("/", "-"), progress, task):
        if not rebuild and _current(client, tag, want):
            return tag
        progress(ProgressEvent(task, 0, None, f"building {tag}"))
        with tempfile.TemporaryDirectory(prefix=f"ctx-{service}-", dir=cache_dir()) as tmp:
            context = Path(tmp) / "context"
            shutil.copytree(source.context, context, symlinks=False)
            wheels = context / "wheels"
            if source.extra:
                wheelhouse(source.extra, wheels, progress)
            else:
                wheels.mkdir(exist_ok=True)
            text = (context / "Dockerfile").read_text(encoding="utf-8", errors="replace")
            instructions, _ = parse_dockerfile(text, f"{source.context}/Dockerfile")
            buildargs = choose_base(client, instructions, progress, task, tag)
            with fallback_noted(buildargs, instructions):
                docker_build(
                    client,
                    context,
                    tag,
                    task=task,
                    progress=progress,
                    buildargs=buildargs,
                    labels={HASH_LABEL: want},
                )
    return tag


@contextmanager
def fallback_noted(
    buildargs: dict[str, str], instructions: list[dockerfile.Instruction]
) -> Iterator[None]:
    """A failed build on the fallback base says so (its default could not be had)."""
    try:
        yield
    except RuntimeOperationError as exc:
        if "BASE_IMAGE" not in buildargs:
            raise
        _, default = dockerfile.base_arg_default(instructions)
        raise RuntimeOperationError(
            f"{exc} (built on {BASE_IMAGE} because {default} cannot be pulled)"
        ) from None
