"""Reading the MITM capture back: `traffic.enc.jsonl` decrypted on demand.

Each line is `{"k": key id, "t": Fernet token}`; `capture.keys` holds each
session's Fernet key age-encrypted to the bot's recipient. Keys are opened
only when a line that needs them is read, lines are decrypted only when they
are looked at, and nothing decrypted is ever written anywhere: the TUI and
`cftui decrypt` hold it in memory only.

A torn line (no newline yet, or not JSON) and a tampered one (bad token, or
an unknown key) are skipped and counted; a wrong identity is an error that
says so, because nothing at all could be read with it.
"""

from __future__ import annotations

import base64
import mmap
import os
from array import array
from collections import OrderedDict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyrage
from cryptography.fernet import Fernet, InvalidToken
from pyrage import x25519

from cftui.botinit import read_identity
from cftui.errors import CaptureError, CftuiError
from cftui.fleet import FleetHome

BLOCK = 1 << 20
BATCH = 256
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


class Keyring:
    """The session keys of `capture.keys`, each opened only when first needed."""

    def __init__(self, keys_path: Path, identity: x25519.Identity, identity_path: Path) -> None:
        self.path = keys_path
        self.identity = identity
        self.identity_path = identity_path
        self.public = str(identity.to_public())
        self._sealed: dict[str, dict[str, Any]] | None = None
        self._open: dict[str, Fernet] = {}

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._sealed is None:
            sealed: dict[str, dict[str, Any]] = {}
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                raw = b""
            except OSError as exc:
                raise CaptureError(f"cannot read {self.path}: {exc.strerror}") from None
            for line in raw.splitlines():
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("k"), str):
                    sealed[entry["k"]] = entry
            self._sealed = sealed
        return self._sealed

    def get(self, key_id: str) -> Fernet | None:
        """The key's Fernet, None if `capture.keys` does not hold it."""
        f = self._open.get(key_id)
        if f is not None:
            return f
        entry = self._load().get(key_id)
        if entry is None:
            self._sealed = None  # a session started since we last looked?
            entry = self._load().get(key_id)
            if entry is None:
                return None
        recipient = entry.get("recipient")
        wrong = CaptureError(
            f"{self.identity_path} cannot open capture key {key_id}: it was sealed to "
            f"{recipient or 'another recipient'}, this identity is {self.public}; "
            "use the bot's own identity (--identity FILE)"
        )
        if isinstance(recipient, str) and recipient != self.public:
            raise wrong
        try:
            key = pyrage.decrypt(base64.b64decode(entry.get("age", "")), [self.identity])
            f = Fernet(key)
        except pyrage.DecryptError:
            raise wrong from None
        except ValueError:
            return None  # a damaged keys line: its flows count as unknown
        self._open[key_id] = f
        return f


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


Job = tuple[int, bytes, Fernet, bytes]  # offset, key id, key, token


def _decrypt_jobs(jobs: list[Job]) -> tuple[list[CaptureEntry], int]:
    """Decrypt a batch (thread-safe: touches no shared state); returns entries, tampered."""
    out: list[CaptureEntry] = []
    tampered = 0
    for offset, key_id, fernet, token in jobs:
        try:
            plain = fernet.decrypt(token)
        except InvalidToken:
            tampered += 1
            continue
        if plain[:1] != b"{":
            tampered += 1
            continue
        out.append(CaptureEntry(offset, key_id.decode("ascii", "replace"), plain))
    return out, tampered


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

    def _job(self, offset: int, line: bytes) -> Job | None:
        """Split a line and find its key (here, not in a worker: it may raise)."""
        parts = _split(line)
        if parts is None:
            self.skipped.torn += 1
            return None
        fernet = self._fernet(parts[0])
        if fernet is None:
            self.skipped.unknown_key += 1
            return None
        return offset, parts[0], fernet, parts[1]

    def _decrypt_line(self, offset: int, line: bytes) -> CaptureEntry | None:
        job = self._job(offset, line)
        if job is None:
            return None
        entries, tampered = _decrypt_jobs([job])
        self.skipped.tampered += tampered
        return entries[0] if entries else None

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

    def iter_entries(self, newest_first: bool = True, workers: int = 1) -> Iterator[CaptureEntry]:
        """Every readable flow, in order, decrypted only as the caller asks for it.

        With `workers` > 1 a full scan decrypts batches in threads (the
        cryptography calls release the GIL), a few batches ahead at most.
        """
        f = self._open()
        if f is None:
            return
        with f:
            blocks = self._blocks_backward(f) if newest_first else self._blocks_forward(f)
            if workers <= 1:
                yield from self._sequential(blocks)
            else:
                yield from self._parallel(blocks, workers)

    def _sequential(self, blocks: Iterator[list[tuple[int, bytes]]]) -> Iterator[CaptureEntry]:
        # The hot loop of a full scan: `_job` and `_decrypt_jobs` inlined, the
        # common line shape split by hand, keys looked up by their raw id.
        fernets = self._fernets
        names: dict[bytes, str] = {}
        skipped = self.skipped
        for block in blocks:
            for offset, line in block:
                if not line:
                    continue
                mid = line.find(_MIDDLE, 6) if line[:6] == _PREFIX and line[-2:] == _SUFFIX else -1
                if mid > 0:
                    key_id, token = line[6:mid], line[mid + 7 : -2]
                else:
                    parts = _split(line)
                    if parts is None:
                        skipped.torn += 1
                        continue
                    key_id, token = parts
                fernet = fernets[key_id] if key_id in fernets else self._fernet(key_id)
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
                name = names.get(key_id)
                if name is None:
                    name = names[key_id] = key_id.decode("ascii", "replace")
                yield CaptureEntry(offset, name, plain)

    def _parallel(
        self, blocks: Iterator[list[tuple[int, bytes]]], workers: int
    ) -> Iterator[CaptureEntry]:
        pending: deque[Future] = deque()
        with ThreadPoolExecutor(workers, thread_name_prefix="cftui-decrypt") as pool:
            try:
                for block in blocks:
                    jobs = [j for o, line in block if line and (j := self._job(o, line))]
                    for i in range(0, len(jobs), BATCH):
                        pending.append(pool.submit(_decrypt_jobs, jobs[i : i + BATCH]))
                    while len(pending) > 2 * workers:
                        yield from self._collect(pending.popleft())
                while pending:
                    yield from self._collect(pending.popleft())
            finally:
                for fut in pending:
                    fut.cancel()

    def _collect(self, fut: Future) -> list[CaptureEntry]:
        entries, tampered = fut.result()
        self.skipped.tampered += tampered
        return entries

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
