"""The Debian root filesystems the project's own images are imported from
(`images/base/`, `images/installer/`): made by `mkrootfs.sh` under
debootstrap into the build cache, keyed by the recipe's hash, and removed
once imported.

Kept apart from the import so that a fresh machine can start the
debootstrap early: `python3 -m cftui.runtime.images.rootfs` needs only the
standard library (no virtualenv, no docker SDK; the docker CLI answers
whether the base is needed), so `make demo` runs it beside the virtualenvs'
installs, and the build later finds the rootfs made (or waits on its lock
for the one being made) instead of starting its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
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


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600
    )


def _base_needed() -> str | None:
    """Why the base's rootfs should be made now, or None (the base image is
    current, or every shipped base is here or pulls, or no docker CLI)."""
    from cftui.runtime.images import dockerfile
    from cftui.runtime.images.base_image import base_image_hash
    from cftui.runtime.images.catalog import BASE_IMAGE, HASH_LABEL, service_sources

    if shutil.which("docker") is None:
        return None
    label = _docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{HASH_LABEL}"}}}}',
                    BASE_IMAGE)  # fmt: skip
    if label.returncode == 0 and label.stdout.strip() == base_image_hash():
        return None
    defaults: set[str] = set()
    for source in service_sources().values():
        path = source.context / "Dockerfile"
        try:
            declares, default = dockerfile.base_arg_default(dockerfile.parse(path.read_text())[0])
        except (OSError, dockerfile.DockerfileError):
            continue
        if declares and default and not default.startswith("clawfactory/"):
            defaults.add(default)
    for ref in sorted(defaults):
        if (
            _docker("image", "inspect", ref).returncode != 0
            and _docker("pull", "-q", ref).returncode != 0
        ):
            return f"{ref} is neither here nor pullable"
    return None


def main() -> int:
    """Make the base image's rootfs ahead of its build when the build will
    need it; one line either way, debootstrap's output in a log file. Never
    fails `make`: the build says what went wrong, when it comes to it."""
    from cftui.runtime.images.base_image import base_image_hash
    from cftui.runtime.images.catalog import BASE_IMAGE, source_root

    started = time.monotonic()
    try:
        why = _base_needed()
        if why is None:
            return 0
        script = source_root() / "images" / "base" / "mkrootfs.sh"
        log = cache_dir() / "rootfs" / "base.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w", encoding="utf-8") as out:

            def to_log(event: ProgressEvent) -> None:
                out.write(event.message + "\n")

            rootfs = debootstrapped(script, base_image_hash(), BASE_IMAGE, to_log, "base rootfs")
    except RuntimeOperationError as exc:
        print(f"base rootfs: not made ahead ({exc})", file=sys.stderr)
        return 0
    seconds = time.monotonic() - started
    print(f"base rootfs: {rootfs} ready in {seconds:.0f} s ({why}; log {log})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
