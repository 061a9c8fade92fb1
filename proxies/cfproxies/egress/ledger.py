"""The ledger of refused requests: what the agent tried to reach and was not let.

`audit/<bot>/egress.requests.json` (`/audit/` in the egress container),
owned by the egress proxy; cftui only reads it, to turn each entry into a
proposal the operator may allow or dismiss. One entry per key, counting the
refusals and keeping the latest attempt:

    {"v": 1, "bot": B, "dropped": N, "requests": [
      {"key": "api.example.com:443", "host": "api.example.com", "port": 443,
       "connect": true, "count": 2, "first": STAMP, "last": STAMP,
       "method": "GET" | null, "path": "/v1/x" | null,
       "rule": null | "<the entry that did not match>",
       "suggest": "<the entry that would have let it through>" | null}]}

- `key` is `host:port` for a host that is not listed (or listed only at an
  address it may not be reached at), `host:port METHOD PREFIX` for a request
  a rule refused, so that each narrow proposal is an entry of its own.
- `method`/`path`: the latest attempt's, null where the proxy did not see
  them (a refused CONNECT). `path` has its query dropped, bytes outside
  printable ASCII %-escaped, and is cut at 512 characters; `host` is cut at
  255 and escaped the same way. They are the agent's text all the same.
- `suggest` is null when no entry can admit the attempt (a hostname that is
  not one, a path with a dot segment).
- At most `MAX_ENTRIES`; the least recently refused goes first, `dropped`
  counts them. Rewritten atomically (0600) by the control loop at most every
  `WRITE_SECONDS` when changed, and loaded back at start so counts survive a
  restart; a file that cannot be read as a ledger is said in one log line
  and started afresh.

Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

log = logging.getLogger("cf-egress")

VERSION = 1
FILE_NAME = "egress.requests.json"
MAX_ENTRIES = 500
MAX_PATH = 512
MAX_HOST = 255
MAX_METHOD = 32
MAX_TEXT = 2048  # key, rule and suggest
MAX_FILE_BYTES = 8 * 1024 * 1024  # a full ledger is well under 2 MB
WRITE_SECONDS = 0.5


def utc_stamp() -> str:
    """`2026-12-02T05:00:00.123Z`."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def printable(text: str, limit: int) -> str:
    """`text` with every byte outside printable ASCII %-escaped (surrogate
    escapes become the bytes they stand for), cut at `limit` characters."""
    out: list[str] = []
    size = 0
    for b in text.encode("utf-8", "surrogateescape"):
        piece = chr(b) if 0x21 <= b <= 0x7E else f"%{b:02X}"
        size += len(piece)
        if size > limit:
            break
        out.append(piece)
    return "".join(out)


def _entry_ok(e: Any) -> bool:
    """One loaded entry has the shape the writer gives it (types and bounds)."""
    if not isinstance(e, dict):
        return False
    texts = {"key": MAX_TEXT, "host": MAX_HOST, "first": 40, "last": 40}
    if not all(isinstance(e.get(k), str) and len(e[k]) <= n for k, n in texts.items()):
        return False
    optional = {"method": MAX_METHOD, "path": MAX_PATH, "rule": MAX_TEXT, "suggest": MAX_TEXT}
    for k, n in optional.items():
        v = e.get(k)
        if v is not None and not (isinstance(v, str) and len(v) <= n):
            return False
    port, count = e.get("port"), e.get("count")
    if port is not None and not (type(port) is int and 0 <= port <= 65535):
        return False
    return type(count) is int and count >= 1 and isinstance(e.get("connect"), bool)


_FIELDS = ("key", "host", "port", "connect", "count", "first", "last")
_OPTIONAL = ("method", "path", "rule", "suggest")


class Attempt(TypedDict, total=False):
    """What the egress saw of one refused attempt (`RequestLedger.record`'s
    keywords), passed through the state's counters unchanged."""

    connect: bool
    method: str | None
    path: str | None
    rule: str | None
    suggest: str | None
    prefix: str | None


class RequestLedger:
    """The entries in least-recently-refused order, and whether they changed."""

    def __init__(self, path: Path, bot: str, max_entries: int = MAX_ENTRIES) -> None:
        self.path = path
        self.bot = bot
        self.max_entries = max_entries
        self.entries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.dropped = 0
        self.changes = 0  # bumped on every record; the writer compares it

    # --- recording ---------------------------------------------------------
    def record(
        self,
        host: str,
        port: int | None,
        *,
        connect: bool = False,
        method: str | None = None,
        path: str | None = None,
        rule: str | None = None,
        suggest: str | None = None,
        prefix: str | None = None,
    ) -> None:
        """Count one refusal: of `host:port`, or with `prefix` (a refusal by a
        rule) of `host:port METHOD PREFIX`. The agent's text (host, method,
        path) is made printable and bounded here."""
        shown_host = printable(host, MAX_HOST)
        key = f"[{shown_host}]:{port}" if ":" in shown_host else f"{shown_host}:{port}"
        if prefix is not None:
            key = f"{key} {printable(method or '-', MAX_METHOD)} {printable(prefix, MAX_PATH)}"
        now = utc_stamp()
        entry = self.entries.pop(key, None)
        if entry is None:
            entry = {"key": key, "count": 0, "first": now}
        entry.update(
            host=shown_host,
            port=port,
            connect=connect,
            count=entry["count"] + 1,
            last=now,
            method=printable(method, MAX_METHOD) if method is not None else None,
            path=printable(path.split("?", 1)[0], MAX_PATH) if path is not None else None,
            rule=rule[:MAX_TEXT] if rule is not None else None,
            suggest=suggest if suggest is not None and len(suggest) <= MAX_TEXT else None,
        )
        self.entries[key] = entry
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
            self.dropped += 1
        self.changes += 1

    def document(self) -> dict[str, Any]:
        requests = [{k: e.get(k) for k in (*_FIELDS, *_OPTIONAL)} for e in self.entries.values()]
        return {"v": VERSION, "bot": self.bot, "dropped": self.dropped, "requests": requests}

    # --- the file ----------------------------------------------------------
    def load(self) -> None:
        """Take back what the last run wrote; a bad file is logged and left
        to be replaced, bad entries are skipped (and said, in one line)."""
        try:
            raw = _read_bounded(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("starting a fresh request ledger: cannot read %s: %s", self.path, exc)
            return
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("v") != VERSION:
                raise ValueError(f"not a version {VERSION} ledger")
            requests = doc.get("requests")
            dropped = doc.get("dropped", 0)
            if not isinstance(requests, list) or type(dropped) is not int or dropped < 0:
                raise ValueError("'requests' must be a list and 'dropped' a count")
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            log.warning("starting a fresh request ledger: %s is corrupt (%s)", self.path, exc)
            return
        good = [e for e in requests if _entry_ok(e)]
        if len(good) != len(requests):
            log.warning("request ledger: skipped %d bad entries", len(requests) - len(good))
        good.sort(key=lambda e: e["last"])
        self.dropped = dropped
        for e in good:
            self.entries.pop(e["key"], None)
            self.entries[e["key"]] = {k: e.get(k) for k in (*_FIELDS, *_OPTIONAL)}
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
            self.dropped += 1

    def write(self) -> None:
        """Atomically replace the file (0600, like everything in audit/)."""
        data = json.dumps(self.document(), indent=1).encode() + b"\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".egress.requests.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            log.error("cannot write %s: %s", self.path, exc)


def _read_bounded(path: Path) -> bytes:
    """A regular file's bytes, never through a link, at most MAX_FILE_BYTES."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError("not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise OSError(f"larger than {MAX_FILE_BYTES} bytes")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
