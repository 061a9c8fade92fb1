"""fleet.toml parsed once per change, not once per command.

Every command reads fleet.toml, and `tomllib` costs more to import (its
regexes are compiled at import) and to run than the whole rest of `cftui
list`'s own work (issue #23: within 3x a bare interpreter). So the parsed
data is kept beside the file as JSON, which the interpreter parses in C,
under the file's identity and stamps (device, inode, size, mtime, ctime),
the way a `.pyc` is kept for its `.py`.

Never stale: the file is stated (on the open descriptor) before it is read,
so a change made while it is read leaves a key that no later stat matches;
and, as git does with its index, a file changed less than `RACY_S` ago is
not cached, since a second change of the same size within one tick of the
filesystem's clock would keep every stamp. Data JSON cannot hold as it is
(TOML dates and times) is not cached either. A cache that is missing,
unreadable, torn or of another file is ignored and written again; one that
cannot be written (a read-only home) costs only the parse.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

# Longer than any filesystem's timestamp tick (ext4, xfs: a kernel tick;
# FAT: 2 s).
RACY_S = 3.0
_FORMAT = 1


def load(path: Path, cache: Path) -> dict[str, Any] | None:
    """`path` parsed as TOML, None when it does not exist. The errors are
    those of reading it (OSError, UnicodeDecodeError) and of `tomllib`."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below, before the parse)
    except FileNotFoundError:
        return None
    with f:
        st = os.fstat(f.fileno())
        key = [_FORMAT, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        cached = _cached(cache, key)
        if cached is not None:
            return cached
        text = f.read().decode("utf-8")
    import tomllib  # only when the cache does not answer

    data = tomllib.loads(text)
    if time.time_ns() - st.st_mtime_ns > RACY_S * 1e9:
        _store(cache, key, data)
    return data


def _cached(cache: Path, key: list[int]) -> dict[str, Any] | None:
    try:
        entry = json.loads(cache.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    data = entry.get("data")
    return data if isinstance(data, dict) else None


def _store(cache: Path, key: list[int], data: dict[str, Any]) -> None:
    try:
        text = json.dumps({"key": key, "data": data}, separators=(",", ":"))
    except (TypeError, ValueError):  # a TOML date or time: not JSON
        return
    from cftui.securefs import atomic_write_private

    with contextlib.suppress(OSError):  # a read-only home: the parse is all it costs
        atomic_write_private(cache, text)
