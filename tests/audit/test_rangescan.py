"""Newline-aligned ranges of a file, scanned in worker processes."""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from cftui.audit import rangescan
from cftui.audit.rangescan import Scan, split


def lines_of(path: str, start: int, end: int) -> list[bytes]:
    """The worker side: read our own range, return its lines."""
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(end - start).split(b"\n")


def whoami(path: str, start: int, end: int) -> tuple[int, bool]:
    return os.getpid(), "textual" in sys.modules


def slow(path: str, start: int, end: int, delay: float) -> int:
    time.sleep(delay)
    return start


def fails(path: str, start: int, end: int) -> None:
    raise ValueError(f"bad range {start}")


@pytest.fixture
def log(tmp_path: Path) -> Path:
    p = tmp_path / "log.txt"
    p.write_bytes(b"".join(b"line %d %s\n" % (i, b"x" * (i % 37)) for i in range(3000)))
    return p


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096, 1 << 30])
def test_split_covers_the_file_with_ranges_that_end_on_newlines(log, chunk):
    data = log.read_bytes()
    ranges = split(log, chunk=chunk)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    for (_, e), (s, _) in itertools.pairwise(ranges):
        assert e == s and data[e - 1 : e] == b"\n"
    assert all(e - s >= min(chunk, len(data)) or e == len(data) for s, e in ranges)


def test_split_keeps_a_long_or_unterminated_line_whole(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"a\n" + b"b" * 5000 + b"\nc\n" + b"torn")
    assert split(p, chunk=10) == [(0, 5003), (5003, 5009)]
    assert split(p, chunk=1) == [(0, 2), (2, 5003), (5003, 5005), (5005, 5009)]
    assert split(p, start=2, end=5005, chunk=10) == [(2, 5003), (5003, 5005)]
    assert split(p, start=5009, chunk=10) == []
    p.write_bytes(b"")
    assert split(p) == []


@pytest.mark.parametrize("reverse", [False, True])
def test_parallel_results_equal_in_process_ones_in_order(log, reverse):
    here = Scan(lines_of, log, chunk=500, workers=1, reverse=reverse)
    there = Scan(lines_of, log, chunk=500, min_parallel=0, reverse=reverse)
    assert not here.parallel and there.parallel
    a, b = list(here), list(there)
    assert a == b and len(a) > 20
    starts = [s for s, _, _ in a]
    assert starts == sorted(starts, reverse=reverse)
    lines = [ln for _, _, part in (reversed(a) if reverse else a) for ln in part if ln]
    assert lines == log.read_bytes().splitlines()


def test_small_ranges_stay_in_process(log):
    assert not Scan(lines_of, log).parallel  # 100 KB < MIN_PARALLEL
    assert Scan(lines_of, log, min_parallel=0).parallel == (rangescan.cpu_count() > 1)


@pytest.mark.skipif(rangescan.cpu_count() < 2, reason="one CPU: scans run in-process")
def test_workers_are_other_processes_without_textual(log):
    import textual  # noqa: F401 - the parent has it, as the TUI does

    results = [r for _, _, r in Scan(whoami, log, chunk=100, min_parallel=0)]
    assert {pid for pid, _ in results} - {os.getpid()} == {pid for pid, _ in results}
    assert not any(has_textual for _, has_textual in results)
    stats = rangescan.worker_stats()
    assert stats and all(s.rss >= s.pss > 0 and s.cpu >= 0 for s in stats)


def test_progress_is_a_byte_fraction_reaching_one(log):
    seen: list[float] = []
    scan = Scan(lines_of, log, chunk=5000, min_parallel=0, progress=seen.append)
    list(scan)
    assert seen == sorted(seen) and seen[-1] == 1.0 and scan.fraction == 1.0


@pytest.mark.skipif(rangescan.cpu_count() < 2, reason="one CPU: scans run in-process")
def test_cancel_from_another_thread_stops_a_waiting_scan(log):
    scan = Scan(slow, log, 1.0, chunk=100, min_parallel=0)
    out: list[int] = []
    t = threading.Thread(target=lambda: out.extend(r for _, _, r in scan))
    t0 = time.monotonic()
    t.start()
    time.sleep(0.3)
    scan.cancel()
    t.join(0.5)
    assert not t.is_alive() and time.monotonic() - t0 < 0.9
    assert out == [] and scan.cancelled and scan.fraction == 0.0


def test_closing_early_cancels_what_is_pending(log):
    scan = Scan(slow, log, 0.05, chunk=100, min_parallel=0)
    with scan:
        for _ in scan:
            break
    assert scan.cancelled
    # the pool is free again: a new scan runs to the end
    assert len(list(Scan(lines_of, log, chunk=5000, min_parallel=0))) > 1


def test_a_worker_error_reaches_the_caller(log):
    with pytest.raises(ValueError, match="bad range 0"):
        list(Scan(fails, log, chunk=100, min_parallel=0))


def dies(path: str, start: int, end: int) -> None:
    os._exit(3)  # as if killed, or out of memory


@pytest.mark.skipif(rangescan.cpu_count() < 2, reason="one CPU: scans run in-process")
def test_a_dead_worker_fails_the_scan_and_the_next_scan_starts_a_new_pool(log):
    from concurrent.futures.process import BrokenProcessPool

    with pytest.raises(BrokenProcessPool):
        list(Scan(dies, log, chunk=5000, min_parallel=0))
    assert len(list(Scan(lines_of, log, chunk=5000, min_parallel=0))) > 1


SCRIPT = """
import io, sys
from cftui.audit import rangescan

class Capture(io.TextIOBase):  # as Textual's print capture: no file descriptor
    def fileno(self):
        return -1

    def write(self, s):
        return len(s)

def size(path, start, end):
    return end - start

if __name__ == "__main__":
    sys.stderr = Capture()
    scan = rangescan.Scan(size, __file__, chunk=50, min_parallel=0)
    print(scan.parallel, sum(r for _, _, r in scan))
"""


@pytest.mark.skipif(rangescan.cpu_count() < 2, reason="one CPU: scans run in-process")
def test_the_pool_starts_when_stderr_has_no_file_descriptor(tmp_path):
    import subprocess

    script = tmp_path / "tui_like.py"
    script.write_text(SCRIPT)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", str(len(SCRIPT.encode()))]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it is not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


@pytest.mark.skipif(rangescan.cpu_count() < 2, reason="one CPU: scans run in-process")
def test_the_pool_is_reused_and_its_workers_end_with_the_process(tmp_path, log):
    import subprocess

    first = {pid for _, _, (pid, _) in Scan(whoami, log, chunk=100, min_parallel=0)}
    second = {pid for _, _, (pid, _) in Scan(whoami, log, chunk=100, min_parallel=0)}
    assert first & {w.pid for w in rangescan.worker_stats()}
    assert second <= {w.pid for w in rangescan.worker_stats()}  # no new pool for a new scan

    script = tmp_path / "exits.py"
    script.write_text(
        "from cftui.audit import rangescan\n"
        "def size(path, start, end):\n"
        "    return end - start\n"
        "if __name__ == '__main__':\n"
        "    list(rangescan.Scan(size, __file__, chunk=20, min_parallel=0))\n"
        "    print(*[w.pid for w in rangescan.worker_stats()])\n"
    )
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr, r.stderr
    pids = [int(p) for p in r.stdout.split()]
    assert pids
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)
