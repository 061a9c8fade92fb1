"""The machine's build cache (`$XDG_CACHE_HOME/clawfactory`) and the file
locks that let one process build an image while the others wait for it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cftui.progress import Progress, ProgressEvent


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/clawfactory` (default `~/.cache/clawfactory`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "clawfactory"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def file_lock(name: str, progress: Progress, task: str) -> Iterator[None]:
    """An exclusive lock shared by every process and thread on this machine.

    flock locks belong to an open file description, so two threads of one
    process, each opening the file, exclude each other as two processes do.
    """
    locks = cache_dir() / "locks"
    locks.mkdir(exist_ok=True)
    with open(locks / f"{name}.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(ProgressEvent(task, message="waiting for another build of the same image"))
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
