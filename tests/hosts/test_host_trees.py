"""host_trees: a bot's trees as tar streams to another host and back, with
the hostile tar the agent's host could send (links out, a member behind a
link, `..`, absolute names, devices, hard links, a huge file)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from cftui.errors import RuntimeOperationError
from cftui.runtime import host_trees


def _members(stream) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        return {m.name: m for m in tar}


def test_pack_sends_links_as_links_and_plain_files_only(tmp_path: Path) -> None:
    src = tmp_path / "code"
    (src / "workspace" / "memory").mkdir(parents=True)
    (src / "workspace" / "SOUL.md").write_text("soul\n")
    (src / "workspace" / "memory" / "note.md").write_text("mine\n")
    (src / "out").symlink_to("/etc")
    os.mkfifo(src / "pipe")
    tool = src / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o6777)
    members = _members(host_trees.pack(src, skip=["workspace/memory"]))
    assert members["./out"].issym() and members["./out"].linkname == "/etc"
    assert "./out/passwd" not in members  # never followed
    assert "./pipe" not in members
    assert members["./tool"].mode == 0o755  # no set-id, no group/other write
    assert "./workspace/SOUL.md" in members
    assert not any(n.startswith("./workspace/memory") for n in members)


def _tar(*entries: tuple[tarfile.TarInfo, bytes | None]) -> io.BytesIO:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    out.seek(0)
    return out


def _file(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def _entry(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def test_unpack_makes_plain_files_and_follows_no_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "fresh"
    dest.mkdir()
    stream = _tar(
        _entry("./skills", tarfile.DIRTYPE),
        _file("./skills/SKILL.md", b"# s\n", 0o4755),
        _entry("./out", tarfile.SYMTYPE, str(outside)),
        _file("./out/planted", b"through the link\n"),  # behind a link: refused
        _file("../escape", b"x"),
        _file("/abs-file", b"x"),
        _entry("./dev", tarfile.CHRTYPE),
        _entry("./fifo", tarfile.FIFOTYPE),
        _entry("./hard", tarfile.LNKTYPE, "./skills/SKILL.md"),
        _file("./big.bin", b"0123456789" * 10),
    )
    oversized = host_trees.unpack_plain(stream, dest, max_bytes=50)
    assert (dest / "skills" / "SKILL.md").read_text() == "# s\n"
    assert stat.S_IMODE((dest / "skills" / "SKILL.md").stat().st_mode) == 0o755
    assert (dest / "out").is_symlink() and os.readlink(dest / "out") == str(outside)
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "escape").exists() and not Path("/abs-file").exists()
    for name in ("dev", "fifo", "hard"):
        assert not os.path.lexists(dest / name), name
    # Over the limit: skipped unread, named for take_home's stand-in.
    assert oversized == [("big.bin", 100)] and not os.path.lexists(dest / "big.bin")


def test_take_home_stands_in_for_big_files_after_the_copy_sparse(tmp_path: Path) -> None:
    dest = tmp_path / "proposals"
    dest.mkdir()
    (dest / "old.md").write_text("gone on the far side\n")
    stream = _tar(_file("./notes.md", b"n\n"), _file("./big.bin", b"0123456789" * 10))
    host_trees.take_home(
        stream, dest, max_bytes=50, complete=True, oversized=[("skills/huge.bin", 1 << 30)]
    )
    assert (dest / "notes.md").read_text() == "n\n" and not (dest / "old.md").exists()
    assert (dest / "big.bin").stat().st_size == 100
    huge = dest / "skills" / "huge.bin"
    assert huge.stat().st_size == 1 << 30 and huge.stat().st_blocks * 512 < 1 << 20
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".incoming-")]


def test_unpack_of_a_broken_stream_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RuntimeOperationError) as exc:
        host_trees.unpack_plain(io.BytesIO(b"not a tar" * 100), tmp_path, max_bytes=10)
    assert "\n" not in str(exc.value)


def test_replace_with_keeps_unchanged_files_and_deletes_only_when_complete(
    tmp_path: Path,
) -> None:
    dest, fresh = tmp_path / "dest", tmp_path / "fresh"
    for d in (dest, fresh):
        d.mkdir()
        (d / "same.md").write_text("same\n")
        os.utime(d / "same.md", (1_700_000_000, 1_700_000_000))
    (dest / "gone.md").write_text("old\n")
    (fresh / "new.md").write_text("new\n")
    inode = (dest / "same.md").stat().st_ino
    host_trees.replace_with(fresh, dest, delete=False)
    assert (dest / "gone.md").exists() and (dest / "new.md").read_text() == "new\n"
    host_trees.replace_with(fresh, dest)
    assert not (dest / "gone.md").exists()
    assert (dest / "same.md").stat().st_ino == inode
