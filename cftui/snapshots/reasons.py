"""Failures as the one line a user reads (CONTRACTS §1)."""

from __future__ import annotations

import errno


def os_message(exc: OSError) -> str:
    """What the system said, without the errno and path noise ("disk full")."""
    if exc.errno == errno.ENOSPC:
        return "disk full"
    return exc.strerror or str(exc)


def one_line(exc: BaseException) -> str:
    """Any exception's text on one short line, for a notice or an event."""
    return " ".join(str(exc).split())[:160] or type(exc).__name__
