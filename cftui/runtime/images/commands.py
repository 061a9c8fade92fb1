"""Host commands a build runs (debootstrap, pip), their output lines
reported as progress and a failure as one line naming what failed."""

from __future__ import annotations

import subprocess
from typing import Any

from cftui.errors import RuntimeOperationError
from cftui.progress import Progress, ProgressEvent
from cftui.runtime.images.engine import one_line


def run_logged(cmd: list[str], *, task: str, progress: Progress, what: str, **kw: Any) -> None:
    """Run a command, its output lines as progress; a one-line error naming `what`."""
    last: list[str] = []
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            **kw,
        )
    except OSError as exc:
        raise RuntimeOperationError(f"{what} failed: cannot run {cmd[0]}: {exc.strerror}") from None
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            last = [*last[-4:], line]
            progress(ProgressEvent(task, message=line))
    if proc.wait() != 0:
        tail = one_line(last[-1]) if last else f"exit {proc.returncode}"
        raise RuntimeOperationError(f"{what} failed: {tail}")
