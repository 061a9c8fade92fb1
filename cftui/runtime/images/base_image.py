"""`clawfactory/base:bookworm`, the base every shipped Dockerfile falls
back to when its public default cannot be pulled (no registry): made here
from Debian packages (`images/base/mkrootfs.sh` under debootstrap, then
`docker import`), once per machine, labelled with the hash of its recipe."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from cftui.errors import RuntimeOperationError
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime.images.cache import file_lock
from cftui.runtime.images.catalog import BASE_IMAGE, HASH_LABEL, SERVICE_LABEL, source_root
from cftui.runtime.images.engine import explain, image_labels, one_line
from cftui.runtime.images.hashing import paths_hash
from cftui.runtime.images.rootfs import debootstrapped, discard


def base_image_hash(root: Path | None = None) -> str:
    base = (root or source_root()) / "images" / "base"
    return paths_hash(base / "mkrootfs.sh", base / "packages.txt", salt="base")


def ensure_base_image(client: Any, progress: Progress = no_progress) -> str:
    """`clawfactory/base:bookworm`, made from Debian packages if missing.

    Safe when several processes ask at once: one builds, the others wait on
    a file lock and then find the image there.
    """
    root = source_root()
    want = base_image_hash(root)
    labels = image_labels(client, BASE_IMAGE)
    if labels is not None and labels.get(HASH_LABEL) == want:
        return BASE_IMAGE
    task = "base image"
    with file_lock("base-bookworm", progress, task):
        labels = image_labels(client, BASE_IMAGE)
        if labels is not None and labels.get(HASH_LABEL) == want:
            return BASE_IMAGE
        _build_base(client, root, want, progress, task)
    return BASE_IMAGE


def _build_base(client: Any, root: Path, want: str, progress: Progress, task: str) -> None:
    build_rootfs_image(
        client,
        root / "images" / "base" / "mkrootfs.sh",
        BASE_IMAGE,
        [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            'CMD ["python3"]',
            f"LABEL {HASH_LABEL}={want} {SERVICE_LABEL}=base",
        ],
        want,
        progress,
        task,
    )


def build_rootfs_image(
    client: Any,
    script: Path,
    image: str,
    changes: list[str],
    want: str,
    progress: Progress,
    task: str,
) -> None:
    """A Debian rootfs made by `script ROOTFS MIRROR` under debootstrap (or
    found made ahead, `rootfs`), imported as `image` with Dockerfile
    `changes` (which must set HASH_LABEL to `want`): every image of the
    project made from Debian packages alone is made here."""
    import docker.errors
    import requests

    rootfs = debootstrapped(script, want, image, progress, task)
    try:
        progress(ProgressEvent(task, 1, 2, f"docker import {image}"))
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", "-", "."],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert tar.stdout is not None
        repo, _, tag = image.partition(":")
        # The engine answers only once the import is done: minutes on a slow
        # disk, past the client's usual timeout (harmless for other callers
        # meanwhile: theirs only grows).
        saved_timeout = client.api.timeout
        client.api.timeout = max(saved_timeout or 0, 1800)
        try:
            client.api.import_image(
                src=tar.stdout,
                repository=repo,
                tag=tag or "latest",
                changes=changes,
                stream_src=True,
            )
        except (docker.errors.DockerException, requests.RequestException) as exc:
            tar.kill()
            raise RuntimeOperationError(
                f"building {image} failed at docker import: {explain(exc)}"
            ) from None
        finally:
            client.api.timeout = saved_timeout
            tar.stdout.close()
            err = tar.stderr.read().decode(errors="replace") if tar.stderr else ""
            tar.wait()
        if tar.returncode != 0:
            raise RuntimeOperationError(
                f"building {image} failed at tar: {one_line(err) or tar.returncode}"
            )
        labels = image_labels(client, image)
        if labels is None or labels.get(HASH_LABEL) != want:
            raise RuntimeOperationError(f"building {image} failed: import produced no image")
        progress(ProgressEvent(task, 2, 2, f"built {image}"))
    finally:
        discard(script, want)
