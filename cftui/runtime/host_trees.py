"""A bot's trees as tar streams, to send them to another host over its SSH
link and to bring the agent's proposals back from there.

Both directions treat the tree as hostile. Going out, the walk never
follows a link (a link is sent as a link), sends only directories, regular
files and links, and strips set-id, sticky and group/other write bits.
Coming back (the proposals tree the agent wrote on the host), only
directories, regular files and links (as links, never written through) are
made, in a fresh directory: nothing absolute, no `..`, nothing whose place
resolves outside it (a member behind a link is refused), no device, fifo or
hard link. A file over the scan's limit is not carried (the host's side
leaves it out of the stream, as Lima's `--max-size` does: a sparse file
costs the agent nothing there, and would be read whole and spooled here);
an empty sparse file of its size stands in for it, made in this machine's
tree after the copy (an rsync of a stand-in writes it out as real zeros),
so the scan refuses it with its reason. The fresh copy replaces the
host's tree with the same rsync arguments Lima uses
(`lima.sync.PROPOSALS_ARGS`): files that did not change keep their inode
and the scan's cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from cftui.errors import RuntimeOperationError

# Lima's sync rules (`cftui.runtime.lima.sync`) are imported where they are
# used: that module loads asyncssh, which this machine's Docker bots (whose
# runtime imports this module) never need.

# Spooled in memory up to this size, then on disk.
_SPOOL_BYTES = 8 << 20


def pack(src: Path, *, skip: Sequence[str] = (), stand_ins_over: int | None = None) -> IO[bytes]:
    """`src` as an uncompressed tar (members relative to it, `.` first),
    rewound, ready to stream; `skip`: relative paths left out (and what is
    under them); `stand_ins_over`: a file larger than this that is mostly
    holes (a pull's stand-in, `take_home`) is left out too, never read as
    zeros into the spool and written out on the host. Blocking: run it in
    a thread."""
    skipped = {f"./{rel.strip('/')}" for rel in skip}

    def stand_in(info: tarfile.TarInfo) -> bool:
        if stand_ins_over is None or not info.isreg() or info.size <= stand_ins_over:
            return False
        try:
            st = os.lstat(os.path.join(src, info.name))
        except OSError:
            return True
        return st.st_blocks * 512 < st.st_size // 2

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if info.name in skipped or stand_in(info):
            return None
        if not (info.isdir() or info.isreg() or info.issym() or info.islnk()):
            return None  # no device, fifo or socket leaves this machine
        info.mode &= 0o755
        info.uname = info.gname = ""
        return info

    out = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - returned
    try:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(str(src), arcname=".", recursive=True, filter=keep)
    except OSError as exc:
        out.close()
        raise RuntimeOperationError(f"cannot read {src}: {exc.strerror or exc}") from None
    out.seek(0)
    return out


def _inside(dest: str, rel: str) -> bool:
    where = os.path.realpath(os.path.join(dest, rel))
    return where == dest or where.startswith(dest + os.sep)


def unpack_plain(stream: IO[bytes], dest: Path, *, max_bytes: int) -> list[tuple[str, int]]:
    """Make the tree of a tar `stream` in `dest` (a new, empty directory):
    plain files, directories and links only (see the module's docstring).
    The (path, size) of each file over `max_bytes`, skipped unread (at most
    MAX_OVERSIZED), for `take_home`'s stand-ins. Blocking."""
    root = os.path.realpath(dest)
    oversized: list[tuple[str, int]] = []

    def plain(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        name = os.path.normpath(member.name)
        parts = name.split(os.sep)
        if name == "." or os.path.isabs(name) or ".." in parts:
            return None
        if not _inside(root, os.path.dirname(name) or "."):
            return None  # under a link: nothing is made through one
        if member.issym():
            if not member.linkname or "\0" in member.linkname:
                return None
            return member.replace(name=name, mode=0o777, uid=0, gid=0, uname="", gname="")
        if not (member.isdir() or member.isreg()):
            return None
        try:
            safe = tarfile.data_filter(member.replace(name=name), path)
        except tarfile.FilterError:
            return None
        # The executable bit survives, as git records it; nothing else.
        mode = 0o755 if member.isdir() or member.mode & 0o100 else 0o644
        return safe.replace(mode=mode, uid=0, gid=0, uname="", gname="")

    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if member.isreg() and member.size > max_bytes:
                    oversized.append((os.path.normpath(member.name), member.size))
                    continue
                tar.extract(member, str(dest), set_attrs=True, filter=plain)
    except (tarfile.TarError, OSError) as exc:
        raise RuntimeOperationError(f"the tree that came back is not readable: {exc}") from None
    from cftui.runtime.lima.sync import MAX_OVERSIZED

    return [(rel, size) for rel, size in oversized if _inside(root, rel)][:MAX_OVERSIZED]


def take_home(
    stream: IO[bytes],
    dest: Path,
    *,
    max_bytes: int,
    complete: bool,
    oversized: Sequence[tuple[str, int]] = (),
) -> None:
    """The tree of a tar `stream` made `dest`'s (`unpack_plain` into a fresh
    directory beside it, then `replace_with`), and a sparse stand-in in
    `dest` for each file over `max_bytes`: those the far side listed
    (`oversized`, left out of the stream) and any the stream still held.
    Blocking."""
    from cftui.runtime.lima.sync import MAX_OVERSIZED, stand_in_for

    fresh = Path(tempfile.mkdtemp(prefix=".incoming-", dir=dest.parent))
    try:
        found = unpack_plain(stream, fresh, max_bytes=max_bytes)
        replace_with(fresh, dest, delete=complete)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    stand_in_for(dest, [*oversized, *found][:MAX_OVERSIZED])


def replace_with(fresh: Path, dest: Path, *, delete: bool = True) -> None:
    """Make `dest` hold what `fresh` holds (rsync, as Lima's pull does, but
    between two directories of this machine). `delete=False` after a read
    that missed files (the agent made some unreadable): nothing is removed,
    so what it hid shows as it was, never as a removal. Blocking."""
    from cftui.runtime.lima.sync import PARTIAL, PROPOSALS_ARGS

    dest.mkdir(parents=True, exist_ok=True)
    args = [a for a in PROPOSALS_ARGS if delete or a != "--delete"]
    proc = subprocess.run(
        ["rsync", *args, f"{fresh}/", f"{dest}/"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    if proc.returncode not in (0, *PARTIAL):
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise RuntimeOperationError(
            f"cannot update {dest}: rsync: {lines[-1] if lines else proc.returncode}"
        )
