"""A bot's gateway image, built from its `code/` (its Dockerfile) when
missing or when `code/` changed: the one build of a Dockerfile the agent
wrote, so the one that is contained (`build_gateway_image` says how).

Every function here blocks (docker SDK): call it in a thread.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from cftui.errors import RuntimeOperationError
from cftui.fleet import validate_bot_name
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime.images import context, dockerfile
from cftui.runtime.images.cache import cache_dir, file_lock
from cftui.runtime.images.catalog import GATEWAY_LABEL, HASH_LABEL, gateway_image_name
from cftui.runtime.images.engine import docker_build, image_attrs, image_labels
from cftui.runtime.images.hashing import RECIPE
from cftui.runtime.images.services import (
    choose_base,
    fallback_noted,
    inert,
    parse_dockerfile,
    refuse_remote_sources,
)

_GATEWAY_SALT = f"{RECIPE}-gateway"


def gateway_source_hash(code_dir: Path) -> str:
    """The label a gateway image built from `code_dir` carries."""
    raw = context.read_dockerfile(Path(code_dir))
    return context.context_digest(Path(code_dir), raw, _GATEWAY_SALT)


def _gateway_dockerfile(code_dir: Path, what: str) -> tuple[bytes, list[dockerfile.Instruction]]:
    """code/Dockerfile, read once without following links, and parsed; a
    remote ADD source is refused here, before anything is built."""
    try:
        raw = context.read_dockerfile(code_dir)
    except RuntimeOperationError as exc:
        raise RuntimeOperationError(f"cannot build {what}: {exc}") from None
    instructions, escape = parse_dockerfile(
        raw.decode("utf-8", errors="replace"), f"{code_dir}/Dockerfile"
    )
    found = dockerfile.remote_add_sources(instructions, escape)
    refuse_remote_sources(found, "code/Dockerfile", what)
    return raw, instructions


def _refuse_foreign_images(
    client: Any, bot: str, instructions: list[dockerfile.Instruction], buildargs: dict[str, str]
) -> None:
    """A gateway's build reads no image of another bot's gateway (FROM or
    COPY --from): those hold that bot's code/ as it was built. An image
    named with a variable cftui cannot resolve is refused for the same
    reason: it cannot be checked."""
    what = f"the gateway of {bot}"
    own = gateway_image_name(bot)
    for ref in dockerfile.image_refs(instructions, buildargs):
        where = f"cannot build {what}: code/Dockerfile line {ref.line}: {ref.how} {inert(ref.ref)}"
        if ref.unresolved:
            raise RuntimeOperationError(
                f"{where} names its image with a variable cftui cannot resolve: "
                "give it a default (`ARG NAME=image`) or write the image name"
            )
        attrs = image_attrs(client, ref.ref)
        if attrs is None:
            continue
        owner = ((attrs.get("Config") or {}).get("Labels") or {}).get(GATEWAY_LABEL)
        tags = attrs.get("RepoTags") or []
        foreign_tag = any(t.startswith("clawfactory/gateway-") and t != own for t in tags)
        if (owner and owner != bot) or foreign_tag:
            raise RuntimeOperationError(
                f"{where} is another bot's gateway image: refused (it holds that bot's code/)"
            )


def build_gateway_image(
    client: Any,
    bot: str,
    code_dir: Path,
    progress: Progress = no_progress,
    *,
    nocache: bool = False,
) -> str:
    """A bot's gateway image from its `code/` (its Dockerfile), built when
    missing or when `code/` changed; `nocache` forces a full rebuild.

    The Dockerfile is the agent's to write, so its build is contained: no
    network for RUN (`network_mode="none"`), no ADD from a URL (dockerd would
    fetch it itself, on the host's network), a context tar that follows no
    link (`context`), and per-step memory limits.
    """
    validate_bot_name(bot)
    code_dir = Path(code_dir)
    tag = gateway_image_name(bot)
    what = f"the gateway of {bot}"
    raw, instructions = _gateway_dockerfile(code_dir, what)
    # A rebuild (`nocache`) compares with nothing: the tree is read once, into the tar.
    want = None if nocache else context.context_digest(code_dir, raw, _GATEWAY_SALT)
    labels = image_labels(client, tag)
    if want is not None and labels is not None and labels.get(HASH_LABEL) == want:
        return tag
    task = f"gateway {bot}"
    with file_lock(f"gateway-{bot}", progress, task):
        labels = image_labels(client, tag)
        if want is not None and labels is not None and labels.get(HASH_LABEL) == want:
            return tag
        progress(ProgressEvent(task, 0, None, f"building {tag} from {code_dir}"))
        buildargs = choose_base(client, instructions, progress, task, what, check_onbuild=True)
        _refuse_foreign_images(client, bot, instructions, buildargs)
        with tempfile.TemporaryFile(prefix=f"ctx-gateway-{bot}-", dir=cache_dir()) as ctx:
            # The label is the hash of what this tar holds, read in this pass.
            want = context.context_digest(code_dir, raw, _GATEWAY_SALT, out=ctx)
            ctx.seek(0)
            with fallback_noted(buildargs, instructions):
                docker_build(
                    client,
                    ctx,
                    tag,
                    task=task,
                    progress=progress,
                    buildargs=buildargs,
                    labels={HASH_LABEL: want, GATEWAY_LABEL: bot},
                    nocache=nocache,
                    contained=True,
                )
    return tag
