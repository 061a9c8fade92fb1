"""Reading the MITM capture back: `traffic.enc.jsonl` decrypted on demand.

Each line is `{"k": key id, "t": Fernet token}`; `capture.keys` holds each
session's Fernet key age-encrypted to the bot's recipient (`capture_keys`).
Keys are opened only when a line that needs them is read, lines are
decrypted only when they are looked at, and nothing decrypted is ever written anywhere: the TUI and
`cftui decrypt` hold it in memory only.

A torn line (no newline yet, or not JSON) and a tampered one (bad token, or
an unknown key) are skipped and counted; a wrong identity is an error that
says so, because nothing at all could be read with it.

A full scan of a big log runs in worker processes (`rangescan`), since
`Fernet.decrypt` holds one core: the session keys reach the workers only
through the pool's pipe, and the plaintext only comes back through it.
"""

from __future__ import annotations

import mmap
import os
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from cftui.audit import rangescan
from cftui.audit.capture_keys import Keyring
from cftui.botinit import read_identity
from cftui.errors import CaptureError, CftuiError
from cftui.fleet import FleetHome

BLOCK = 1 << 20
SCAN_CHUNK = rangescan.CHUNK  # a worker's share of a full scan, in bytes
SCAN_MIN = rangescan.MIN_PARALLEL  # smaller logs are scanned here, line by line
_PREFIX = b'{"k":"'
_MIDDLE = b'","t":"'
_SUFFIX = b'"}'


@dataclass
class SkipCounts:
    """Lines passed over, by reason."""

    torn: int = 0
    tampered: int = 0
    unknown_key: int = 0

    @property
    def total(self) -> int:
        return self.torn + self.tampered + self.unknown_key

    def add(self, other: SkipCounts) -> None:
        self.torn += other.torn
        self.tampered += other.tampered
        self.unknown_key += other.unknown_key

    def describe(self) -> str:
        parts = [
            f"{n} {what}"
            for n, what in (
                (self.torn, "torn"),
                (self.tampered, "tampered"),
                (self.unknown_key, "with an unknown key"),
            )
            if n
        ]
        return ", ".join(parts)


@dataclass(slots=True)
class CaptureEntry:
    """One captured flow; `record` is parsed on first access."""

    offset: int
    key_id: str
    plaintext: bytes
    _record: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def record(self) -> dict[str, Any]:
        if self._record is None:
            self._record = orjson.loads(self.plaintext)
        return self._record

    def summary(self) -> tuple[str, str, str, str, int, float | None]:
        """(ts, method, status, url, response bytes, duration ms) for one row."""
        r = self.record
        resp = r.get("response") or {}
        status = r.get("status")
        shown = str(status) if status is not None else ("ERR" if r.get("error") else "-")
        if r.get("refused"):
            shown += "!"
        return (
            str(r.get("ts") or ""),
            str(r.get("method") or ""),
            shown,
            str(r.get("url") or ""),
            int(resp.get("bytes") or 0),
            r.get("duration_ms"),
        )


def _split(line: bytes) -> tuple[bytes, bytes] | None:
    """The key id and token of one line, without a JSON parse when it has our shape."""
    if line.startswith(_PREFIX) and line.endswith(_SUFFIX):
        mid = line.find(_MIDDLE, 6)
        if mid > 0:
            return line[6:mid], line[mid + 7 : -2]
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("k"), str) and isinstance(obj.get("t"), str):
        return obj["k"].encode(), obj["t"].encode("ascii", "replace")
    return None


def _decrypt_lines(
    lines: Iterable[tuple[int, bytes]],
    fernet_for: Callable[[bytes], Fernet | None],
    skipped: SkipCounts,
) -> Iterator[tuple[int, bytes, bytes]]:
    """(offset, key id, plaintext) of each readable line; the others are counted.

    The hot loop of every scan, here or in a worker: keys are looked up by
    their raw id.
    """
    fernets: dict[bytes, Fernet | None] = {}
    for offset, line in lines:
        if not line:
            continue
        parts = _split(line)
        if parts is None:
            skipped.torn += 1
            continue
        key_id, token = parts
        if key_id in fernets:
            fernet = fernets[key_id]
        else:
            fernet = fernets[key_id] = fernet_for(key_id)
        if fernet is None:
            skipped.unknown_key += 1
            continue
        try:
            plain = fernet.decrypt(token)
        except InvalidToken:
            skipped.tampered += 1
            continue
        if plain[:1] != b"{":
            skipped.tampered += 1
            continue
        yield offset, key_id, plain


Decrypted = list[tuple[int, bytes, bytes]]  # (offset, key id, plaintext), in file order


def _scan_range(
    path: str, start: int, end: int, fernet_for: Callable[[bytes], Fernet | None]
) -> tuple[Decrypted, SkipCounts]:
    """Decrypt the complete lines of [start, end), which starts a line."""
    with open(path, "rb") as f:
        f.seek(start)
        lines = f.read(end - start).split(b"\n")
    skipped = SkipCounts()
    if lines.pop():
        skipped.torn += 1  # the file was cut short since the scan began

    def numbered() -> Iterator[tuple[int, bytes]]:
        pos = start
        for line in lines:
            yield pos, line
            pos += len(line) + 1

    return list(_decrypt_lines(numbered(), fernet_for, skipped)), skipped


def _decrypt_range(
    path: str, start: int, end: int, keys: dict[bytes, bytes]
) -> tuple[Decrypted, SkipCounts, set[bytes]]:
    """A worker's task: one range decrypted with the keys it was sent.

    Returns the entries, the skip counts and the key ids it was not given (their
    lines are counted as unknown; the caller may know them and redo the range).
    """
    missing: set[bytes] = set()

    def fernet_for(key_id: bytes) -> Fernet | None:
        raw = keys.get(key_id)
        if raw is None:
            missing.add(key_id)
            return None
        return Fernet(raw)

    entries, skipped = _scan_range(path, start, end, fernet_for)
    return entries, skipped, missing


def _entries(decrypted: Iterable[tuple[int, bytes, bytes]]) -> Iterator[CaptureEntry]:
    names: dict[bytes, str] = {}
    for offset, key_id, plain in decrypted:
        name = names.get(key_id)
        if name is None:
            name = names[key_id] = key_id.decode("ascii", "replace")
        yield CaptureEntry(offset, name, plain)


class CaptureReader:
    """A bot's capture log, decrypted lazily with the bot's identity."""

    def __init__(
        self, home: FleetHome, bot: str, identity_path: Path | None = None, cache: int = 512
    ) -> None:
        self.bot = bot
        self.log_path = home.capture_log(bot)
        self.identity_path = identity_path or home.snapshot_key(bot)
        try:
            identity = read_identity(self.identity_path)
        except CaptureError:
            raise
        except CftuiError as exc:
            raise CaptureError(str(exc)) from None
        self.keys = Keyring(home.capture_keys(bot), identity, self.identity_path)
        self.skipped = SkipCounts()
        self._offsets: array | None = None
        self._cache: OrderedDict[int, CaptureEntry | None] = OrderedDict()
        self._cache_size = cache
        self._fernets: dict[bytes, Fernet | None] = {}

    # --- one line -------------------------------------------------------
    def _fernet(self, key_id: bytes) -> Fernet | None:
        if key_id in self._fernets:
            return self._fernets[key_id]
        f = self.keys.get(key_id.decode("ascii", "replace"))
        self._fernets[key_id] = f
        return f

    def _decrypt_line(self, offset: int, line: bytes) -> CaptureEntry | None:
        for off, key_id, plain in _decrypt_lines([(offset, line)], self._fernet, self.skipped):
            return CaptureEntry(off, key_id.decode("ascii", "replace"), plain)
        return None

    def _open(self):
        try:
            return self.log_path.open("rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CaptureError(f"cannot read {self.log_path}: {exc.strerror}") from None

    # --- streaming ------------------------------------------------------
    def _blocks_forward(self, f) -> Iterator[list[tuple[int, bytes]]]:
        """Complete lines, oldest first, a block's worth at a time."""
        f.seek(0)
        pos, rest = 0, b""
        while True:
            block = f.read(BLOCK)
            if not block:
                break
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            out = []
            for line in lines:
                out.append((pos, line))
                pos += len(line) + 1
            yield out
        if rest:
            self.skipped.torn += 1  # still being written, or cut short by a crash

    @staticmethod
    def _complete_end(f, size: int) -> int:
        """The offset just past the file's last newline (0 if it has none)."""
        pos = size
        while pos > 0:
            n = min(BLOCK, pos)
            pos -= n
            f.seek(pos)
            nl = f.read(n).rfind(b"\n")
            if nl >= 0:
                return pos + nl + 1
        return 0

    def _blocks_backward(self, f) -> Iterator[list[tuple[int, bytes]]]:
        """Complete lines, newest first, a block's worth at a time."""
        size = f.seek(0, os.SEEK_END)
        end = self._complete_end(f, size)
        if end < size:
            self.skipped.torn += 1  # still being written, or cut short by a crash
        pos, carry, first = end, b"", True
        while pos > 0:
            n = min(BLOCK, pos)
            pos -= n
            f.seek(pos)
            data = f.read(n)
            if first:
                data, first = data[:-1], False  # the final newline
            data += carry
            parts = data.split(b"\n")
            carry = parts.pop(0) if pos > 0 else b""
            off = pos + len(data)
            out = []
            for line in reversed(parts):
                start = off - len(line)
                out.append((start, line))
                off = start - 1
            yield out
        # `carry` is empty here: at pos 0 the first part is a whole line

    def iter_entries(
        self, newest_first: bool = True, workers: int | None = 1
    ) -> Iterator[CaptureEntry]:
        """Every readable flow, in order, decrypted only as the caller asks for it.

        `workers=1` decrypts here, line by line as the caller asks (the newest
        page). Any other value is a full scan: in worker processes, one per
        CPU, when the log is big enough to pay for them (`SCAN_MIN`), else
        here as with 1. The parallel scan reads the log as it was when it
        began; lines appended later are left for the next one.
        """
        f = self._open()
        if f is None:
            return
        with f:
            if workers != 1:
                size = os.fstat(f.fileno()).st_size
                end = self._complete_end(f, size)
                scan = rangescan.Scan(
                    _decrypt_range,
                    self.log_path,
                    {},  # the keys: set below, before the first task
                    end=end,
                    reverse=newest_first,
                    chunk=SCAN_CHUNK,
                    min_parallel=SCAN_MIN,
                )
                if scan.parallel:
                    if end < size:
                        self.skipped.torn += 1  # still being written, or cut short by a crash
                    self._open_edge_key(f, end, newest_first)
                    scan.args = (self.keys.opened(),)
                    yield from _entries(self._merge(scan, newest_first))
                    return
            blocks = self._blocks_backward(f) if newest_first else self._blocks_forward(f)
            yield from _entries(
                _decrypt_lines(chain.from_iterable(blocks), self._fernet, self.skipped)
            )

    def _merge(
        self, scan: rangescan.Scan, newest_first: bool
    ) -> Iterator[tuple[int, bytes, bytes]]:
        """The workers' results in order, their skip counts added to ours."""
        try:
            with scan:
                for start, end, (entries, skipped, missing) in scan:
                    # A key the workers were not sent (a later capture session):
                    # open it here, where it may fail loudly, and redo the range.
                    if missing and [k for k in missing if self._fernet(k) is not None]:
                        scan.args = (self.keys.opened(),)  # a new dict: tasks in flight keep theirs
                        entries, skipped = _scan_range(scan.path, start, end, self._fernet)
                    self.skipped.add(skipped)
                    yield from reversed(entries) if newest_first else entries
        except OSError as exc:  # here or in a worker: the log went away under the scan
            raise CaptureError(f"cannot read {self.log_path}: {exc.strerror}") from None
        except BrokenExecutor:
            raise CaptureError(
                "a decrypting worker process died (killed, or out of memory?); run it again"
            ) from None

    def _open_edge_key(self, f, end: int, newest_first: bool) -> None:
        """Open the key of the first line the scan yields, so the workers start with it."""
        if newest_first:
            f.seek(max(0, end - BLOCK))
            line = f.read(end - f.tell())[:-1].rsplit(b"\n", 1)[-1]
        else:
            f.seek(0)
            line = f.readline(BLOCK).rstrip(b"\n")
        parts = _split(line) if line else None
        if parts is not None:
            self._fernet(parts[0])

    def page(self, count: int = 100, newest_first: bool = True) -> list[CaptureEntry]:
        """The first `count` flows in the chosen order."""
        out: list[CaptureEntry] = []
        if count <= 0:
            return out
        for entry in self.iter_entries(newest_first):
            out.append(entry)
            if len(out) >= count:
                break
        return out

    # --- random access, for a scrolling view -----------------------------
    def line_count(self, refresh: bool = False) -> int:
        """Index the complete lines (8 bytes a line) without decrypting any."""
        if self._offsets is None or refresh:
            offsets = array("q")
            f = self._open()
            if f is not None:
                with f:
                    size = os.fstat(f.fileno()).st_size
                    if size:
                        with mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as m:
                            start = 0
                            while True:
                                nl = m.find(b"\n", start)
                                if nl < 0:
                                    break
                                offsets.append(start)
                                start = nl + 1
            self._offsets = offsets
        return len(self._offsets)

    def entry(self, index: int, newest_first: bool = True) -> CaptureEntry | None:
        """Flow number `index` of the indexed lines (None when skipped)."""
        n = self.line_count()
        if not 0 <= index < n:
            raise IndexError(index)
        i = n - 1 - index if newest_first else index
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        assert self._offsets is not None
        start = self._offsets[i]
        with self.log_path.open("rb") as f:
            f.seek(start)
            line = f.readline().rstrip(b"\n")
        entry = self._decrypt_line(start, line) if line else None
        self._cache[i] = entry
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entry
