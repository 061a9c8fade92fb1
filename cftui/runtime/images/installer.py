"""`clawfactory/installer`: Debian's nodejs and npm on bookworm, made from
Debian packages alone (`images/installer/mkrootfs.sh` under debootstrap,
then `docker import`, as the base is), labelled with its recipe's hash.

It is made lazily, the first time a start needs to install a bot's declared
dependencies, never by `make images`: a fleet with no dependencies never
waits for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cftui.progress import Progress, no_progress
from cftui.runtime.images.base_image import build_rootfs_image
from cftui.runtime.images.cache import file_lock
from cftui.runtime.images.catalog import HASH_LABEL, INSTALLER_IMAGE, SERVICE_LABEL, source_root
from cftui.runtime.images.engine import image_labels
from cftui.runtime.images.hashing import paths_hash


def installer_hash(root: Path | None = None) -> str:
    here = (root or source_root()) / "images" / "installer"
    return paths_hash(here / "mkrootfs.sh", here / "packages.txt", salt="installer")


def ensure_installer_image(client: Any, progress: Progress = no_progress) -> str:
    """The installer image, made if missing or stale (one process builds,
    the others wait on the file lock and find it)."""
    root = source_root()
    want = installer_hash(root)
    labels = image_labels(client, INSTALLER_IMAGE)
    if labels is not None and labels.get(HASH_LABEL) == want:
        return INSTALLER_IMAGE
    task = "installer image"
    with file_lock("installer-bookworm", progress, task):
        labels = image_labels(client, INSTALLER_IMAGE)
        if labels is not None and labels.get(HASH_LABEL) == want:
            return INSTALLER_IMAGE
        build_rootfs_image(
            client,
            root / "images" / "installer" / "mkrootfs.sh",
            INSTALLER_IMAGE,
            [
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "ENV LANG=C.UTF-8",
                "ENV NODE_ENV=production",
                'CMD ["npm", "--version"]',
                f"LABEL {HASH_LABEL}={want} {SERVICE_LABEL}=installer",
            ],
            want,
            progress,
            task,
        )
    return INSTALLER_IMAGE
