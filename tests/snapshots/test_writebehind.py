"""cftui.age.writebehind: writeback started as a file is written, a bounded number
of ranges in flight, and silence where the kernel cannot do it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cftui.age import writebehind
from cftui.age.writebehind import WriteBehind


def test_ranges_follow_the_writes_and_stay_bounded(tmp_path: Path) -> None:
    if writebehind._sync_file_range is None:
        pytest.skip("sync_file_range is Linux only")
    block = os.urandom(1 << 20)
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        wb = WriteBehind(fd)
        for _ in range(10 * writebehind.STEP // len(block)):
            wb.written(os.write(fd, block))
            assert len(wb.pending) <= writebehind.IN_FLIGHT
        assert wb.enabled
        assert wb.submitted == wb.end == 10 * writebehind.STEP
        assert [start for start, _ in wb.pending] == [
            i * writebehind.STEP for i in range(10 - writebehind.IN_FLIGHT, 10)
        ]
    finally:
        os.close(fd)
    assert path.stat().st_size == 10 * writebehind.STEP


def test_a_pipe_turns_it_off_quietly() -> None:
    read_end, write_end = os.pipe()
    try:
        wb = WriteBehind(write_end)
        wb.written(writebehind.STEP)
        assert not wb.enabled and not wb.pending
        wb.written(writebehind.STEP)  # nothing raised, nothing tried
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_failed_writeback_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(fd: int, offset: int, length: int, flags: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(writebehind, "_sync_file_range", failing)
    with (tmp_path / "out").open("wb") as f:
        wb = WriteBehind(f.fileno())
        with pytest.raises(OSError, match="Input/output"):
            wb.written(writebehind.STEP)
