"""`python3 -m cftui.runtime.images.ahead`: what `make demo` starts beside
the virtualenvs' installs, so that a fresh machine's downloads overlap: the
base image's rootfs (`rootfs.debootstrapped`), when the build will need it.

It runs before any virtualenv exists, so it needs only the standard library
(no docker SDK): the docker CLI says whether the base is current and whether
the shipped bases are here or pull (a pull that works is a prefetch too).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

from cftui.errors import RuntimeOperationError
from cftui.progress import ProgressEvent
from cftui.runtime.images import dockerfile
from cftui.runtime.images.base_image import base_image_hash
from cftui.runtime.images.cache import cache_dir
from cftui.runtime.images.catalog import (
    BASE_IMAGE,
    HASH_LABEL,
    SERVICE_IMAGES,
    service_sources,
    source_root,
)
from cftui.runtime.images.rootfs import debootstrapped


def _docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The docker CLI's answer; one that does not come in time is a failure."""
    try:
        return subprocess.run(
            ["docker", *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
    except (subprocess.TimeoutExpired, OSError) as exc:
        return subprocess.CompletedProcess(["docker", *args], 1, "", str(exc))


def _base_needed() -> str | None:
    """Why the base's rootfs should be made now, or None (the base image is
    current, or every shipped base is here or pulls, or no docker CLI)."""
    if shutil.which("docker") is None:
        return None
    label = _docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{HASH_LABEL}"}}}}',
                    BASE_IMAGE)  # fmt: skip
    if label.returncode == 0 and label.stdout.strip() == base_image_hash():
        return None
    defaults: set[str] = set()
    sources = service_sources()
    for service in SERVICE_IMAGES:  # not the project bases: built only on demand
        path = sources[service].context / "Dockerfile"
        try:
            declares, default = dockerfile.base_arg_default(dockerfile.parse(path.read_text())[0])
        except (OSError, dockerfile.DockerfileError):
            continue
        if declares and default and not default.startswith("clawfactory/"):
            defaults.add(default)
    for ref in sorted(defaults):
        # A pull that works is a prefetch; one that hangs is cut (the build's
        # own pull would hang the same, so the base is then what it uses).
        here = _docker("image", "inspect", ref).returncode == 0
        if not here and _docker("pull", "-q", ref, timeout=300).returncode != 0:
            return f"{ref} is neither here nor pullable"
    return None


def main() -> int:
    """Make the base image's rootfs ahead of its build when the build will
    need it; one line either way, debootstrap's output in a log file. Never
    fails `make`: the build says what went wrong, when it comes to it."""
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
