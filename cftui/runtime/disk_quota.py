"""A hard bound on the disk a bot's gateway can fill: its tree on a
loop-mounted ext4 image of a fixed size.

What this machine offers was checked first (issue 15): the fleet home sits
on the root ext4, mounted without `prjquota` and not tunable (`tune2fs` is
refused on the device), so project quotas are out; `--storage-opt size`
needs overlay2 on xfs (the engine here runs fuse-overlayfs) and bounds only
the container's own layer, not a bind mount; a local volume with `o=loop`
is refused by the engine (`loop` is not a kernel mount option); tmpfs is
memory, not persistent. A loop-mounted filesystem works with the engine and
the kernel alone: the kernel answers ENOSPC past the size, whatever writes.

`ensure_bounded(image, mountpoint, size_mb)` makes the image on first use,
filled with what the mountpoint held (`mkfs.ext4 -d`, which copies links as
links and follows none), empties and freezes the directory underneath
(`chattr +i`), so that nothing can write beside the bound while the image is
not mounted (after a reboot, a write fails instead of landing on the root
filesystem), and mounts it `nosuid,nodev`. It is idempotent and needs root.
`release(mountpoint)` unmounts; the image keeps the tree.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

from cftui.errors import RuntimeOperationError

MOUNT_OPTIONS = "loop,nosuid,nodev,noatime"
_TIMEOUT_S = 120


def _run(cmd: list[str], what: str) -> str:
    if shutil.which(cmd[0]) is None:
        raise RuntimeOperationError(f"{what}: {cmd[0]} is not installed")
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeOperationError(f"{what}: {cmd[0]} did not run: {exc}") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        why = " ".join(lines[-1].split()) if lines else f"exit {proc.returncode}"
        raise RuntimeOperationError(f"{what}: {cmd[0]} failed: {why}")
    return proc.stdout


def _unescape(field: str) -> str:
    """A mountinfo path (spaces and the like are octal-escaped there)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounted_device(mountpoint: Path) -> str | None:
    """The device mounted at `mountpoint` (the last mount there), or None."""
    target = os.path.realpath(mountpoint)
    found = None
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) >= 5 and _unescape(fields[4]) == target:
                parts = right.split()
                found = parts[1] if len(parts) > 1 else None
    return found


def _backing_file(device: str) -> str | None:
    name = os.path.basename(device)
    try:
        return Path(f"/sys/block/{name}/loop/backing_file").read_text().strip()
    except OSError:
        return None


def is_bounded(image: Path, mountpoint: Path) -> bool:
    """Whether `image` is what is mounted at `mountpoint`."""
    device = mounted_device(mountpoint)
    if device is None:
        return False
    return _backing_file(device) == os.path.realpath(image)


def _make_image(image: Path, source: Path, size_mb: int, what: str) -> None:
    """A new image of `size_mb` holding a copy of `source`, made under a
    temporary name and renamed into place only once complete."""
    image.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = image.with_name(f".{image.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, size_mb << 20)
    finally:
        os.close(fd)
    try:
        _run(
            ["mkfs.ext4", "-q", "-F", "-m", "0", "-L", "cf-bot", "-d", str(source), str(tmp)],
            what,
        )
        os.replace(tmp, image)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _empty_and_freeze(directory: Path, what: str) -> None:
    """Remove what is left under the mountpoint (its copy is in the image)
    and make it immutable, so nothing can be written there unmounted."""
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)  # fd-based in 3.11: follows no link
        else:
            os.unlink(entry.path)
    _run(["chattr", "+i", str(directory)], what)


def ensure_bounded(image: Path, mountpoint: Path, size_mb: int) -> None:
    """Mount `image` (made from `mountpoint`'s contents when missing) at
    `mountpoint`: every write below it then counts against `size_mb`."""
    what = f"cannot bound the disk of {mountpoint}"
    if os.geteuid() != 0:
        raise RuntimeOperationError(f"{what}: mounting its image needs root")
    st = os.lstat(mountpoint)
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeOperationError(f"{what}: not a directory")
    if is_bounded(image, mountpoint):
        return
    if mounted_device(mountpoint) is not None:
        raise RuntimeOperationError(f"{what}: something else is mounted there")
    if not image.exists():
        _make_image(image, mountpoint, size_mb, what)
        _empty_and_freeze(mountpoint, what)
    _run(["mount", "-o", MOUNT_OPTIONS, str(image), str(mountpoint)], what)
    # The filesystem's root takes the owner and mode the directory had.
    os.chown(mountpoint, st.st_uid, st.st_gid, follow_symlinks=False)
    os.chmod(mountpoint, stat.S_IMODE(st.st_mode))
    with contextlib.suppress(OSError):
        (mountpoint / "lost+found").rmdir()


def release(mountpoint: Path) -> None:
    """Unmount the bounded tree at `mountpoint`, if one is mounted."""
    if mounted_device(mountpoint) is not None:
        _run(["umount", str(mountpoint)], f"cannot release the disk of {mountpoint}")
