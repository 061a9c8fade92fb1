"""Appending JSON lines that concurrent readers and writers can share.

Every record is encoded first and written with a single `os.write` on an
`O_APPEND` descriptor: the kernel then places the whole line at the end of the
file atomically with respect to other appenders, so a reader sees either the
whole record or nothing of it (except a torn tail after a crash, which readers
skip). A short write is rolled back by truncating to where the line began.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class AppendError(OSError):
    """The line could not be written whole; nothing of it was left behind."""


TOO_DEEP = {"truncated": True, "reason": "nested too deep to record"}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def encode_line(record: dict[str, Any]) -> bytes:
    """One compact UTF-8 JSON line ending in a newline. A value nested past
    the recursion limit (an agent's body: found by tests/fuzz) is replaced by
    a marker rather than losing the whole record."""
    try:
        text = _dumps(record)
    except RecursionError:
        kept = {}
        for key, value in record.items():
            try:
                _dumps(value)
            except RecursionError:
                value = TOO_DEEP
            kept[key] = value
        text = _dumps(kept)
    return text.encode("utf-8") + b"\n"


def open_append(path: Path | str, mode: int = 0o600) -> int:
    """An O_APPEND descriptor on `path`, created private if it does not exist."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)


def append_bytes(fd: int, line: bytes) -> None:
    """Write `line` with one `os.write`; on a short write, undo it and raise."""
    try:
        written = os.write(fd, line)
    except OSError as exc:
        raise AppendError(exc.errno, f"cannot append: {exc.strerror}") from None
    if written != len(line):
        # Disk full mid-line: take the fragment back so no torn record stays.
        try:
            end = os.lseek(fd, 0, os.SEEK_END)
            os.ftruncate(fd, end - written)
        except OSError:
            pass
        raise AppendError(28, f"short write ({written} of {len(line)} bytes)")


def append_line(path: Path | str, record: dict[str, Any], mode: int = 0o600) -> None:
    """Append one record to `path` (opened and closed on each call)."""
    fd = open_append(path, mode)
    try:
        append_bytes(fd, encode_line(record))
    finally:
        os.close(fd)
