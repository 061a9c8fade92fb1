"""Content hashes that decide whether something built from a tree must be
built again: the label of a service image, the key of a cached wheelhouse,
the stamp of what was pushed into a Lima VM.

One rule set for every caller: a file counts by its path relative to its
root, its exec bit and its bytes; version-control metadata, caches and
byte-compiled files do not count (`.git`, `__pycache__`, `.pytest_cache`,
`.ruff_cache`, `node_modules`, `*.egg-info`, `*.pyc`, `*.pyo`), since they
change without the sources changing and no build or VM install reads them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

# Bump when the way images are assembled changes, so that every image is
# rebuilt once even though its sources did not change.
RECIPE = "2"

_IGNORED_PARTS = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", "node_modules"}
_IGNORED_SUFFIXES = (".pyc", ".pyo")


def _files(root: Path) -> Iterator[Path]:
    if root.is_file():  # a root may be one file (proxies/pyproject.toml): it counts
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_PARTS)
        dirnames[:] = [d for d in dirnames if not d.endswith(".egg-info")]
        for name in sorted(filenames):
            if not name.endswith(_IGNORED_SUFFIXES):
                yield Path(dirpath) / name


def tree_hash(*roots: Path, salt: str = "") -> str:
    """A hash of every file's relative path, exec bit and bytes under roots
    (each root's name counts too, so two roots cannot trade files)."""
    h = hashlib.sha256(f"{RECIPE}\0{salt}\0".encode())
    for root in roots:
        root = root.resolve()
        h.update(f"root\0{root.name}\0".encode())
        for path in _files(root):
            try:
                data = path.read_bytes()
                mode = path.stat().st_mode
            except OSError:
                continue  # vanished or unreadable: the build itself will say
            rel = path.relative_to(root).as_posix() if path != root else ""
            h.update(f"{rel}\0{mode & 0o111:o}\0{len(data)}\0".encode())
            h.update(data)
    return h.hexdigest()[:24]


def paths_hash(*paths: Path, salt: str = "") -> str:
    """A hash of some files (and directories, via tree_hash)."""
    h = hashlib.sha256(f"{RECIPE}\0{salt}\0".encode())
    for p in paths:
        if p.is_dir():
            h.update(tree_hash(p).encode())
        else:
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:24]
