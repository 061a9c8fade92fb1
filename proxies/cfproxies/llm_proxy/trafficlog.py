"""`traffic.jsonl` as the proxy writes it: one descriptor kept open, one
`write` per record, and a failure that is reported (stderr, `/health`) but
never stops a call."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from cfproxies.jsoncodec import dumps_line
from cfproxies.jsonl import append_bytes, open_append


class TrafficLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.written = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.ok = True
        self._lock = threading.Lock()
        self._open()

    def _fail(self, what: str) -> None:
        self.ok = False
        self.failures += 1
        self.last_error = what
        self.last_error_at = time.time()
        print(f"cf-llm-proxy: traffic log {self.path}: {what}", file=sys.stderr, flush=True)

    def _open(self) -> bool:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.fd = open_append(self.path)
            self._end_torn_line()
        except OSError as exc:
            self.fd = None
            self._fail(f"cannot open: {exc.strerror or exc}")
            return False
        return True

    def _end_torn_line(self) -> None:
        """After a crash the file may end mid-line; close that line so the
        next record is not glued to it (readers skip the torn one)."""
        assert self.fd is not None
        if os.fstat(self.fd).st_size == 0:
            return
        with self.path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
        if last != b"\n":
            os.write(self.fd, b"\n")

    def write(self, record: dict[str, Any]) -> bool:
        """Append one record; False (and reported) if it could not be written."""
        return self.write_line(dumps_line(record))

    def write_line(self, line: bytes) -> bool:
        """Append one encoded record (one JSON line). Called from the event
        loop and from the writer thread, hence the lock (it guards the
        descriptor's reopen, not the append, which is atomic)."""
        with self._lock:
            return self._append(line)

    def _append(self, line: bytes) -> bool:
        if self.fd is None and not self._open():
            return False
        assert self.fd is not None
        try:
            append_bytes(self.fd, line)
        except OSError as exc:
            self._fail(str(exc.strerror or exc))
            # Reopen next time: the file may have been replaced or fixed.
            self.close()
            return False
        self.written += 1
        self.ok = True
        return True

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            finally:
                self.fd = None

    def health(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "writable": self.ok,
            "records_written": self.written,
            "write_failures": self.failures,
            "last_write_error": self.last_error,
            "last_write_error_at": self.last_error_at,
        }
