"""The Debian root filesystems the project's own images are imported from
(`images/base/`, `images/installer/`): made by `mkrootfs.sh` under
debootstrap into the build cache, keyed by the recipe's hash, and removed
once imported.

Kept apart from the import so that a fresh machine can start the
debootstrap early (`ahead`, beside the virtualenvs' installs): the build
then finds the rootfs made, or waits on its lock for the one being made,
instead of starting its own. Standard library only.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cftui.errors import RuntimeOperationError
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime.images.cache import cache_dir, file_lock
from cftui.runtime.images.commands import run_logged

_COMPLETE = ".complete"


def mirror() -> str:
    return os.environ.get("CLAWFACTORY_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def _where(script: Path, want: str) -> Path:
    return cache_dir() / "rootfs" / f"{script.parent.name}-{want}"


def check_can_debootstrap(image: str, root: Path) -> None:
    """One line saying what is missing to make `image`'s rootfs here."""
    if os.geteuid() != 0:
        raise RuntimeOperationError(
            f"building {image} needs root (debootstrap): run "
            f"`sudo {root / 'scripts' / 'build-images.sh'}` once"
        )
    if shutil.which("debootstrap") is None:
        raise RuntimeOperationError(
            f"building {image} needs debootstrap: apt-get install debootstrap"
        )


def debootstrapped(
    script: Path, want: str, image: str, progress: Progress = no_progress, task: str = "rootfs"
) -> Path:
    """The rootfs `script ROOTFS MIRROR` makes for the recipe hash `want`,
    made now unless it is in the cache already (another process making it:
    wait for it). Its directory goes with `discard`."""
    check_can_debootstrap(image, script.parents[2])
    where = _where(script, want)
    with file_lock(f"rootfs-{script.parent.name}", progress, task):
        rootfs = where / "rootfs"
        if (where / _COMPLETE).exists():
            progress(ProgressEvent(task, 0, 2, f"debootstrapped already: {rootfs}"))
            return rootfs
        shutil.rmtree(where, ignore_errors=True)
        where.mkdir(parents=True)
        progress(ProgressEvent(task, 0, 2, f"debootstrap bookworm into {rootfs}"))
        run_logged(
            ["bash", str(script), str(rootfs), mirror()],
            task=task,
            progress=progress,
            what=f"building {image} (debootstrap)",
        )
        (where / _COMPLETE).write_text("ok\n")
        # Rootfs of older recipes left by an interrupted build: never used again.
        for stale in where.parent.glob(f"{script.parent.name}-*"):
            if stale != where:
                shutil.rmtree(stale, ignore_errors=True)
        return rootfs


def discard(script: Path, want: str) -> None:
    """Remove the cached rootfs (imported: hundreds of MB no one reads again),
    under its lock, so a debootstrap in progress elsewhere is never cut."""
    with file_lock(f"rootfs-{script.parent.name}", no_progress, "rootfs"):
        shutil.rmtree(_where(script, want), ignore_errors=True)
