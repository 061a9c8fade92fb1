"""A faster `TarInfo.frombuf` for the plain headers GNU tar writes.

Restoring a snapshot of many small files is bound by the Python reading the
tar, and tarfile's header parser was the largest part of it: 21 helper calls
and two checksums over 512 separately unpacked bytes per member. For the
common header (a file, directory or link, octal numbers, a valid unsigned
checksum) this decodes the fields with one `struct` unpack and sums the block
in C. Anything else (base-256 numbers, sparse files, GNU long names' own
blocks, bad checksums, end of archive) goes to tarfile's parser unchanged,
and whatever it does next (pax and GNU long names, `_proc_member`) is
tarfile's own, so the two produce the same members.
"""

from __future__ import annotations

import struct
import tarfile
from typing import Self

# name, mode, uid, gid, size, mtime, chksum, type, linkname, (magic, version),
# uname, gname, devmajor, devminor, prefix
_FIELDS = struct.Struct("100s8s8s8s12s12s8sc100s8x32s32s8s8s155s")
_FAST_TYPES = frozenset(
    {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE}
)


def _octal(field: bytes) -> int:
    """tarfile's `nti` for an octal field: up to the first NUL, stripped."""
    text = field.split(b"\0", 1)[0].decode("ascii")
    return int(text.strip() or "0", 8)


def _text(field: bytes, encoding: str, errors: str) -> str:
    return field.split(b"\0", 1)[0].decode(encoding, errors)


class FastTarInfo(tarfile.TarInfo):
    """`tarfile.open(..., tarinfo=FastTarInfo)`."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        if len(buf) != tarfile.BLOCKSIZE or buf[156:157] not in _FAST_TYPES:
            return super().frombuf(buf, encoding, errors)
        (name, mode, uid, gid, size, mtime, chksum, kind, linkname, uname, gname, major, minor,
         prefix) = _FIELDS.unpack_from(buf)  # fmt: skip
        try:  # a base-256 number starts with 0x80 or 0xff: not ASCII, so not here
            numbers = [_octal(f) for f in (mode, uid, gid, size, mtime, chksum, major, minor)]
        except (UnicodeDecodeError, ValueError):
            return super().frombuf(buf, encoding, errors)  # raises tarfile's own error
        if numbers[5] != 256 + sum(buf) - sum(buf[148:156]):
            return super().frombuf(buf, encoding, errors)  # signed checksum, or bad
        obj = cls()
        obj.name = _text(name, encoding, errors)
        obj.mode, obj.uid, obj.gid, obj.size, obj.mtime, obj.chksum = numbers[:6]
        obj.devmajor, obj.devminor = numbers[6:]
        obj.type = kind
        obj.linkname = _text(linkname, encoding, errors)
        obj.uname = _text(uname, encoding, errors)
        obj.gname = _text(gname, encoding, errors)
        if kind == tarfile.AREGTYPE and obj.name.endswith("/"):
            obj.type = tarfile.DIRTYPE  # a V7 directory
        if obj.type == tarfile.DIRTYPE:
            obj.name = obj.name.rstrip("/")
        prefix_text = _text(prefix, encoding, errors)
        if prefix_text:  # none of the fast types is a GNU type
            obj.name = prefix_text + "/" + obj.name
        return obj
