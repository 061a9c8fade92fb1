"""A directory held on a loop-mounted ext4 image of a fixed size: past the
size the kernel answers ENOSPC, whatever writes, and nothing else's disk is
touched.

Why a loop image (issue 15, checked on the engine this project is tested
on): the fleet home sits on an ext4 mounted without `prjquota`, so project
quotas are out; `--storage-opt size` needs overlay2 on xfs (the engine runs
fuse-overlayfs) and bounds only the container's own layer, never a bind
mount; a local volume with `o=loop` is refused by the engine; tmpfs is
memory. A loop-mounted filesystem needs only the kernel, and root.

A tree is in one of four states (`state_of`):

- `plain`: an ordinary directory (never bounded);
- `mounted`: its image is mounted on it;
- `unmounted`: the image exists but is not mounted (after a host reboot).
  The directory underneath then holds only MARKER and is immutable, so that
  nothing mistakes it for the tree and nothing writes beside the bound;
  `require_tree` mounts it again (or refuses) before any caller reads it;
- `missing`.

`bind` moves a plain tree onto a new image, crash-safely: the image is made
from the tree (`mkfs.ext4 -d`, which copies links as links and follows none)
under a temporary name and renamed into place; only then is MARKER written,
and from that instant the image is the tree and the directory underneath is
emptied and frozen. A crash before MARKER leaves the tree as it was (the
stray image is made again); a crash after it resumes at the next mount.
Every change runs under a lock beside the image, so two cftui processes
never attach one image twice (which would corrupt it).
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cftui.errors import DiskError
from cftui.humanize import human_bytes

MARKER = ".cf-disk-not-mounted"
MOUNT_OPTIONS = "nosuid,nodev,noatime,discard"  # discard: freed blocks go back to the host
TOOLS = ("mkfs.ext4", "mount", "umount", "losetup", "e2fsck", "resize2fs")
LOOP_MAJOR = 7
_TIMEOUT_S = 600  # mkfs -d copies the whole tree
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_IMMUTABLE_FL = 0x10
_MARKER_TEXT = (
    "This bot's tree lives on its disk image (see `disk` in fleet.toml), which is\n"
    "not mounted here. cftui mounts it (as root) before it reads or writes the tree.\n"
)


@dataclass(frozen=True)
class Usage:
    """What a mounted image holds, as statvfs reports it."""

    size: int
    used: int
    avail: int
    inodes_avail: int

    @property
    def full(self) -> bool:
        """Whether the next write of any size may get ENOSPC."""
        return self.avail < max(self.size // 100, 1 << 20) or self.inodes_avail == 0


_TOOLS_TTL_S = 30.0  # a tool installed meanwhile is seen within this
_tools_checked: tuple[float, list[str]] | None = None


def _on_path(tool: str) -> bool:
    """`shutil.which(tool) is not None`, without loading shutil (and its
    compression modules) on `cftui list`'s path."""
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(folder or os.curdir, tool)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return True
    return False


def unavailable_reason() -> str | None:
    """Why loop images cannot be used here (not root, a tool or the loop
    driver missing), or None when they can. Asked for every bot of a fleet
    view (`botdisk.status`): the tools' PATH search (six tools, each over
    PATH: a thousand stats for 20 bots) is kept for a while."""
    global _tools_checked
    if os.geteuid() != 0:
        return "mounting a disk image needs cftui to run as root"
    now = time.monotonic()
    if _tools_checked is None or now - _tools_checked[0] > _TOOLS_TTL_S:
        _tools_checked = (now, [t for t in TOOLS if not _on_path(t)])
    missing = _tools_checked[1]
    if missing:
        return f"{', '.join(missing)} not installed"
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices (/dev/loop-control is missing)"
    return None


def _run(cmd: list[str], what: str, ok: tuple[int, ...] = (0,)) -> str:
    import subprocess  # only what changes a disk runs a tool; `cftui list` reads state

    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise DiskError(f"{what}: {cmd[0]} is not installed") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DiskError(f"{what}: {cmd[0]} did not run: {exc}") from None
    if proc.returncode not in ok:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        why = " ".join(lines[-1].split()) if lines else f"exit {proc.returncode}"
        raise DiskError(f"{what}: {cmd[0]} failed: {why}")
    return proc.stdout


# --- what is there ------------------------------------------------------------
def _loop_backing(dev: int) -> str | None:
    """The file behind loop device number `dev`, or None."""
    try:
        with open(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/loop/backing_file") as fh:
            return fh.read().strip()
    except OSError:
        return None


def attached_loop(image: Path) -> str | None:
    """The loop device the image is attached to (a container may still hold
    one whose mount here is gone), or None."""
    target = os.path.realpath(image)
    for entry in sorted(Path("/sys/block").glob("loop*")):
        try:
            backing = (entry / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue
        if backing == target:
            return f"/dev/{entry.name}"
    return None


def _mounted_dev(tree: Path) -> int | None:
    """The device mounted on `tree`, or None when it is no mount point."""
    try:
        st, up = os.lstat(tree), os.lstat(tree.parent)
    except FileNotFoundError:
        return None
    return st.st_dev if st.st_dev != up.st_dev else None


def is_mounted(image: Path, tree: Path) -> bool:
    """Whether `image` is what is mounted on `tree`."""
    dev = _mounted_dev(tree)
    if dev is None or os.major(dev) != LOOP_MAJOR:
        return False
    return _loop_backing(dev) == os.path.realpath(image)


def marker_visible(tree: Path) -> bool:
    """Whether `tree` is the frozen directory under an unmounted image."""
    try:
        os.lstat(tree / MARKER)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def state_of(image: Path, tree: Path) -> str:
    """`plain`, `mounted`, `unmounted` or `missing` (the module docstring)."""
    if is_mounted(image, tree):
        return "mounted"
    if marker_visible(tree):
        return "unmounted"
    return "plain" if os.path.lexists(tree) else "missing"


def usage(tree: Path) -> Usage:
    vfs = os.statvfs(tree)
    return Usage(
        size=vfs.f_blocks * vfs.f_frsize,
        used=(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize,
        avail=vfs.f_bavail * vfs.f_frsize,
        inodes_avail=vfs.f_favail,
    )


def tree_bytes(tree: Path) -> int:
    """Disk the tree takes (allocated blocks), walked without following links."""
    total = 0
    stack = [str(tree)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                total += st.st_blocks * 512
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
    return total


# --- the immutable flag ---------------------------------------------------------
def _flags(fd: int) -> int:
    buf = array.array("l", [0])
    fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf, True)
    return buf[0]


def _set_immutable(directory: Path, on: bool) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        flags = _flags(fd)
        new = flags | _FS_IMMUTABLE_FL if on else flags & ~_FS_IMMUTABLE_FL
        if new != flags:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, array.array("l", [new]))
    finally:
        os.close(fd)


def is_immutable(directory: Path) -> bool:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return bool(_flags(fd) & _FS_IMMUTABLE_FL)
    finally:
        os.close(fd)


# --- changes, each under the image's lock ----------------------------------------
@contextlib.contextmanager
def _locked(image: Path) -> Iterator[None]:
    image.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(
        image.with_name(f".{image.name}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_image(image: Path, source: Path, size: int, what: str) -> None:
    """A new image of `size` bytes holding a copy of `source`, renamed into
    place only once complete and on disk."""
    tmp = image.with_name(f".{image.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, size)  # sparse: the host pays only for what is written
    finally:
        os.close(fd)
    try:
        # -m 0: no blocks kept for root (the gateway is not root anyway);
        # -E root_owner: the filesystem's root as the tree's, not root's.
        st = os.lstat(source)
        _run(
            [
                "mkfs.ext4", "-q", "-F", "-m", "0", "-L", "cf-bot",
                "-E", f"root_owner={st.st_uid}:{st.st_gid}",
                "-d", str(source), str(tmp),
            ],
            what,
        )  # fmt: skip
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, image)
        _fsync_dir(image.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _write_marker(tree: Path) -> None:
    fd = os.open(
        tree / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444
    )
    try:
        os.write(fd, _MARKER_TEXT.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(tree)


def _settle(tree: Path) -> None:
    """Empty the directory under the image (its copy is in the image) but for
    MARKER, and freeze it: unmounted, nothing can be written there."""
    if is_immutable(tree):
        return
    for entry in os.scandir(tree):
        if entry.name == MARKER:
            continue
        if entry.is_dir(follow_symlinks=False):
            import shutil

            shutil.rmtree(entry.path)  # fd-based: follows no link
        else:
            os.unlink(entry.path)
    _set_immutable(tree, True)


def _mount_locked(image: Path, tree: Path, what: str) -> None:
    if is_mounted(image, tree):
        return
    reason = unavailable_reason()
    if reason is not None:
        raise DiskError(f"{what}: it is on {image}, which is not mounted ({reason})")
    if not image.is_file():
        raise DiskError(f"{what}: its disk image {image} is missing, and its tree is in it")
    if _mounted_dev(tree) is not None:
        raise DiskError(f"{what}: something else is mounted on {tree}")
    _settle(tree)
    st = os.lstat(tree)
    # The image may still be attached (a container held it when it was
    # unmounted here): mount that device, never a second loop on one image.
    device = attached_loop(image)
    if device is None:
        _run(["mount", "-o", f"loop,{MOUNT_OPTIONS}", str(image), str(tree)], what)
    else:
        _run(["mount", "-o", MOUNT_OPTIONS, device, str(tree)], what)
    os.chown(tree, st.st_uid, st.st_gid, follow_symlinks=False)
    os.chmod(tree, stat.S_IMODE(st.st_mode))
    with contextlib.suppress(OSError):
        (tree / "lost+found").rmdir()


def require_tree(image: Path, tree: Path) -> None:
    """Before anything reads or writes `tree`: if it is the frozen directory
    of an unmounted image, mount the image, or refuse in one line. Costs one
    lstat when the tree is mounted or plain."""
    if not marker_visible(tree):
        return
    what = f"cannot open {tree}"
    reason = unavailable_reason()
    if reason is not None:  # before the lock: its directory may be root's
        raise DiskError(f"{what}: it is on {image}, which is not mounted ({reason})")
    with _locked(image):
        _mount_locked(image, tree, what)


def bind(image: Path, tree: Path, size: int) -> bool:
    """Put `tree` on an image of `size` bytes and mount it (a plain tree is
    moved onto a new image; see the module docstring). True if it moved."""
    what = f"cannot bound the disk of {tree}"
    with _locked(image):
        state = state_of(image, tree)
        if state in ("mounted", "missing"):
            return False
        if state == "unmounted":
            _mount_locked(image, tree, what)
            return False
        reason = unavailable_reason()
        if reason is not None:
            raise DiskError(f"{what}: {reason}")
        if not os.path.isdir(tree) or os.path.islink(tree):
            raise DiskError(f"{what}: not a directory")
        with contextlib.suppress(FileNotFoundError):
            image.unlink()  # a stray image of a move that died before MARKER
        need = tree_bytes(tree)
        if need >= size:
            raise DiskError(
                f"{what}: the tree takes {human_bytes(need)}, more than its disk "
                f"({human_bytes(size)}): raise `disk` in fleet.toml"
            )
        try:
            _make_image(image, tree, size, what)
        except DiskError as exc:
            raise DiskError(f"{exc} (the tree takes {human_bytes(need)})") from None
        _write_marker(tree)  # from here the image is the tree
        _mount_locked(image, tree, what)
        return True


def needs_growing(image: Path, size: int) -> bool:
    try:
        return os.stat(image).st_size < size
    except FileNotFoundError:
        return False


def grow(image: Path, tree: Path, size: int) -> bool:
    """Grow the image to `size` bytes and mount it again; True if it grew.
    Offline (online growth needs CAP_SYS_RESOURCE, which a root in a
    container may lack): the caller has stopped whatever writes the tree. A
    smaller `size` changes nothing, since ext4 images are never shrunk."""
    what = f"cannot grow the disk of {tree}"
    with _locked(image):
        if not needs_growing(image, size):
            return False
        if is_mounted(image, tree):
            _run(["umount", str(tree)], what)
        if attached_loop(image) is not None:
            raise DiskError(f"{what}: a container still holds it; stop the bot, then start it")
        fd = os.open(image, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        _run(["e2fsck", "-f", "-p", str(image)], what, ok=(0, 1))  # 1: fixed, fine
        _run(["resize2fs", str(image)], what)
        _mount_locked(image, tree, what)
        return True


def release(image: Path, tree: Path) -> None:
    """Unmount the image (the tree stays in it; the frozen directory with
    MARKER shows again). What a host reboot does."""
    with _locked(image):
        if is_mounted(image, tree):
            _run(["umount", str(tree)], f"cannot unmount {tree}")


def destroy(image: Path, tree: Path) -> None:
    """Unmount and delete the image, and the directory under it: the tree
    is gone. The loop device is detached (or, if a container still holds
    it, detached by the kernel when that container goes)."""
    what = f"cannot release the disk of {tree}"
    with _locked(image):
        if is_mounted(image, tree):
            _run(["umount", str(tree)], what)
        device = attached_loop(image)
        if device is not None:
            with contextlib.suppress(DiskError):
                _run(["losetup", "-d", device], what)
        if marker_visible(tree):
            _set_immutable(tree, False)
            import shutil

            shutil.rmtree(tree)
        with contextlib.suppress(FileNotFoundError):
            image.unlink()
        with contextlib.suppress(FileNotFoundError):
            image.with_name(f".{image.name}.lock").unlink()
