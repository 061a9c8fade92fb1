"""cftui.snapshots.tarheader: the fast header parser gives the members tarfile gives,
whatever the format, and leaves the unusual headers to tarfile."""

from __future__ import annotations

import io
import tarfile

import pytest

from cftui.snapshots.tarheader import FastTarInfo

from .conftest import add_member


def members(data: bytes, tarinfo: type[tarfile.TarInfo]) -> list[dict]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:", tarinfo=tarinfo) as tar:
        out = []
        for m in tar:
            info = m.get_info()
            info.update(offset=m.offset, offset_data=m.offset_data, pax=m.pax_headers, cls=None)
            info["sparse"] = m.sparse
            out.append(info)
        return out


def build(fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        add_member(tar, "state/", kind=tarfile.DIRTYPE, mode=0o700)
        add_member(tar, "state/plain.txt", data=b"x" * 1000, mode=0o640)
        add_member(tar, "state/empty", mode=0o600)
        add_member(tar, "state/" + "long-" * 40 + "/f", data=b"deep")  # > 100 chars
        add_member(tar, "state/" + "n" * 150, data=b"a name past the ustar limit")
        add_member(tar, "state/unicodé-ü", data=b"utf-8")
        add_member(tar, "state/link", kind=tarfile.SYMTYPE, link="plain.txt")
        add_member(tar, "state/long-link", kind=tarfile.SYMTYPE, link="t" * 150)
        add_member(tar, "state/hard", kind=tarfile.LNKTYPE, link="state/plain.txt")
        add_member(tar, "state/dev", kind=tarfile.CHRTYPE)
        add_member(tar, "state/fifo", kind=tarfile.FIFOTYPE)
        big = tarfile.TarInfo("state/big-ids")
        big.uid = big.gid = 8**8  # base-256 in GNU, pax in PAX
        big.mtime = 1.5e9
        big.uname = "someone"
        tar.addfile(big, io.BytesIO(b""))
    return buf.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_fast_headers_give_tarfiles_members(fmt: int, monkeypatch: pytest.MonkeyPatch) -> None:
    data = build(fmt)
    slow = members(data, tarfile.TarInfo)
    handed_over = []
    real = tarfile.TarInfo.frombuf.__func__  # type: ignore[attr-defined]

    def counting(cls, *args):
        handed_over.append(cls)
        return real(cls, *args)

    monkeypatch.setattr(tarfile.TarInfo, "frombuf", classmethod(counting))
    assert members(data, FastTarInfo) == slow
    assert len(handed_over) <= len(slow) - 4, "the plain headers took the fast path"


def test_ustar_prefix_and_v7_directories() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        add_member(tar, "state/" + "p" * 120 + "/file", data=b"prefixed")
        add_member(tar, "state/d", kind=tarfile.DIRTYPE)
    data = bytearray(buf.getvalue())
    # A V7-style directory: AREGTYPE with a trailing slash (checksum redone).
    v7 = tarfile.TarInfo("state/old-dir/")
    v7.type = tarfile.AREGTYPE
    block = bytearray(v7.tobuf(tarfile.USTAR_FORMAT))
    block[156:157] = tarfile.AREGTYPE
    block[148:156] = b" " * 8
    block[148:155] = b"%06o\0" % sum(block)
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        tar.getmembers()
        end = tar.offset  # where the end-of-archive blocks start
    data[end:end] = block
    assert members(bytes(data), FastTarInfo) == members(bytes(data), tarfile.TarInfo)
    names = [m["name"] for m in members(bytes(data), FastTarInfo)]
    assert "state/old-dir/" in names and any(n.endswith("/file") for n in names)


def outcome(data: bytes, cls: type[tarfile.TarInfo]) -> list:
    """Each member's info or the error that stopped the reading."""
    out: list = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:", tarinfo=cls) as tar:
            while (member := tar.next()) is not None:
                out.append(member.get_info())
    except tarfile.TarError as exc:
        out.append((type(exc), str(exc)))
    return out


@pytest.mark.parametrize("member", [0, 1])
@pytest.mark.parametrize(
    ("offset", "value"),
    [(148, b"0000000\0"), (124, b"12\xff4567\0"), (100, b"07x7\0\0\0\0"), (148, b"\xff" * 8)],
    ids=["checksum", "size not ascii", "mode not octal", "checksum base-256"],
)
def test_bad_headers_end_the_reading_as_in_tarfile(member: int, offset: int, value: bytes) -> None:
    data = bytearray(build(tarfile.GNU_FORMAT))
    data[512 * member + offset : 512 * member + offset + len(value)] = value
    fast, slow = outcome(bytes(data), FastTarInfo), outcome(bytes(data), tarfile.TarInfo)
    assert fast == slow
    assert len(fast) <= member + 1, "nothing read past the bad header"
