"""The engine as the image builders use it: is an image here (or can it be
pulled), what are its labels, and one classic-builder build with its log
lines as progress; every failure one line.

Every function here blocks (docker SDK): call it in a thread.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import IO, Any

from cftui.errors import RuntimeOperationError
from cftui.progress import Progress, ProgressEvent, no_progress

_STEP_RE = re.compile(r"^Step (\d+)/(\d+) :")
_PULL_RETRY_S = 600.0
# Each RUN of a gateway build gets no more than this (the classic builder's
# per-step limits; no pids limit exists there).
GATEWAY_BUILD_LIMITS = {"memory": 2 << 30, "memswap": 2 << 30, "cpushares": 512}


def image_attrs(client: Any, ref: str) -> dict[str, Any] | None:
    """A local image's inspect data, or None when it is not here."""
    import docker.errors
    import requests

    try:
        return dict(client.images.get(ref).attrs)
    except docker.errors.ImageNotFound:
        return None
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise RuntimeOperationError(f"cannot inspect image {ref}: {explain(exc)}") from None


def image_labels(client: Any, ref: str) -> dict[str, str] | None:
    """The labels of a local image, or None when it is not here."""
    attrs = image_attrs(client, ref)
    return None if attrs is None else dict((attrs.get("Config") or {}).get("Labels") or {})


_unpullable: dict[str, float] = {}
_unpullable_lock = threading.Lock()


def image_available(client: Any, ref: str, progress: Progress = no_progress) -> bool:
    """Whether `ref` is here, pulling it if a registry answers.

    With no registry the pull fails at once; the failure is remembered for a
    while so that ten bots starting together do not each try again.
    """
    import docker.errors
    import requests
    from docker.utils import parse_repository_tag

    if image_labels(client, ref) is not None:
        return True
    with _unpullable_lock:
        failed_at = _unpullable.get(ref)
    if failed_at is not None and time.monotonic() - failed_at < _PULL_RETRY_S:
        return False
    repo, tag = parse_repository_tag(ref)
    progress(ProgressEvent("pull", message=f"pulling {ref}"))
    try:
        client.api.pull(repo, tag=tag or "latest")
    except (docker.errors.DockerException, requests.RequestException) as exc:
        progress(ProgressEvent("pull", message=f"cannot pull {ref}: {explain(exc)}"))
        with _unpullable_lock:
            _unpullable[ref] = time.monotonic()
        return False
    return True


def explain(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " ".join(str(text).split())


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def docker_build(
    client: Any,
    context: Path | IO[bytes],
    tag: str,
    *,
    task: str,
    progress: Progress,
    buildargs: dict[str, str],
    labels: dict[str, str],
    nocache: bool = False,
    contained: bool = False,
) -> str:
    """Run one classic-builder build, reporting each log line; the image id.

    `context` is a directory, or a ready tar. `contained`: the build of a
    Dockerfile the agent wrote: no network for its RUN steps, and bounded.
    """
    import docker.errors
    import requests

    last = ""
    image_id = None
    where: dict[str, Any] = (
        {"path": str(context)}
        if isinstance(context, Path)
        else {"fileobj": context, "custom_context": True}
    )
    if contained:
        where.update(network_mode="none", container_limits=dict(GATEWAY_BUILD_LIMITS))
    try:
        stream = client.api.build(
            **where,
            tag=tag,
            buildargs=buildargs,
            labels=labels,
            decode=True,
            rm=True,
            forcerm=True,
            pull=False,
            nocache=nocache,
        )
        for chunk in stream:
            if "error" in chunk:
                error = one_line(str(chunk["error"]))
                where = f" (after: {last})" if last and last not in error else ""
                raise RuntimeOperationError(f"building {tag} failed: {error}{where}")
            text = chunk.get("stream")
            if text:
                for line in text.splitlines():
                    line = line.rstrip()
                    if not line:
                        continue
                    last = one_line(line, 200)
                    step = _STEP_RE.match(line)
                    if step:
                        done, total = int(step[1]) - 1, int(step[2])
                        progress(ProgressEvent(task, done, total, line))
                    else:
                        progress(ProgressEvent(task, message=line))
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
    except docker.errors.APIError as exc:
        raise RuntimeOperationError(f"building {tag} failed: {explain(exc)}") from None
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise RuntimeOperationError(f"building {tag} failed: {one_line(str(exc))}") from None
    if image_id is None:
        try:
            image_id = client.images.get(tag).id
        except docker.errors.DockerException:
            raise RuntimeOperationError(
                f"building {tag} failed: no image was produced (last output: {last or 'none'})"
            ) from None
    progress(ProgressEvent(task, 1, 1, f"built {tag}"))
    return image_id
