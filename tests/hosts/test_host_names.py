"""Two pytest processes never give their test hosts one name (names.py):
each would tear down the other's namespace as a killed run's leftover."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Claims its names, says them, and holds them until its stdin closes.
CLAIM = (
    "import sys; from tests.hosts.names import host_names; n = host_names(); "
    "print(n.suffix, n.subnet, flush=True); sys.stdin.read()"
)


def _claim() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CLAIM],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)


def test_a_second_process_gets_other_names_and_a_gone_ones_are_free_again() -> None:
    first, first_names = _claim()
    try:
        second, second_names = _claim()
    finally:
        _release(first)
    try:
        assert first_names and second_names and first_names != second_names
        third, third_names = _claim()  # the first is gone: its names are free
        _release(third)
        assert third_names == first_names
    finally:
        _release(second)
