"""The traffic filter cut into byte ranges (`scan_range`), here and in
worker processes: line numbers and totals merged from the ranges agree with
the parsed records whatever the cut (every line a range boundary, ranges
cutting the torn and tricky lines), and a file replaced under the scan is
never reported as filtered."""

from __future__ import annotations

import json
import os
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from cftui.audit import rangescan
from cftui.audit.traffic import log as traffic_log
from cftui.audit.traffic import scan as traffic_scan
from cftui.audit.traffic.filter import TrafficFilter
from cftui.audit.traffic.log import TrafficLog
from cftui.audit.traffic.scan import scan_range
from cftui.audit.traffic.totals import Totals, chunk_totals
from tests.audit.test_traffic_filter_edges import COMPACT, SPACED, TRICKY, rec, slow, write

SPECS = ["provider:openai", "model:gemini status:5xx", "status:err", "needle", "4711", ""]


def totals_of(log: TrafficLog, lines: list[int]) -> tuple[int, int, int]:
    records = [log.record(i) for i in lines]
    tokens = sum(t for r in records if isinstance(t := r["tokens_in"], int))
    errors = sum(1 for r in records if not isinstance(s := r["status"], int) or s >= 400 or s == 0)
    return len(records), tokens, errors


@pytest.fixture
def cut(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """Ranges of ~1 record, or smaller (every range ends on the next line's
    end), in worker processes or here."""
    where = request.param
    monkeypatch.setattr(traffic_scan, "RANGE", 300 if where == "tiny" else 1000)
    monkeypatch.setattr(traffic_scan, "PARALLEL_MIN", 0 if where == "workers" else 1 << 40)
    return where


@pytest.mark.parametrize("cut", ["tiny", "here", "workers"], indirect=True)
@pytest.mark.parametrize("style", [COMPACT, SPACED], ids=["compact", "spaced"])
@pytest.mark.parametrize("spec", SPECS)
def test_ranges_agree_with_parsed_records(tmp_path: Path, cut: str, style: dict, spec: str) -> None:
    path = tmp_path / "traffic.jsonl"
    write(path, TRICKY * 7, style)
    flt = TrafficFilter.parse(spec)
    with TrafficLog(path) as log:
        log.scan()
        expected = slow(log, flt)  # the empty filter: every whole record
        assert len(rangescan.split(path, chunk=traffic_scan.RANGE)) > 10
        result = log.filter(flt)
        assert not result.cancelled
        assert list(result.lines) == ([] if flt.empty else expected)  # empty: totals only
        t = result.totals
        assert (t.calls, t.tokens_in, t.errors) == totals_of(log, expected)
        assert result.covered == len(log)
    assert bool(rangescan.worker_stats()) or cut != "workers"  # the pool did run


def test_a_range_reports_line_numbers_from_its_own_first_line(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    write(path, TRICKY, COMPACT, torn=False)
    data = path.read_bytes()
    start = data.index(b"\n", data.index(b"\n") + 1) + 1  # the third line
    lines, totals, count, _pending = scan_range(
        str(path), start, len(data), TrafficFilter.parse("provider:openai"), path.stat().st_ino
    )
    # openai calls are records 0, 4, 5, 7, 9 (see test_traffic_filter_edges)
    assert list(lines) == [2, 3, 5, 7] and totals.calls == 4 and count == len(TRICKY) - 2


def test_a_file_replaced_under_the_scan_is_not_reported(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    write(path, TRICKY, COMPACT, torn=False)
    with TrafficLog(path) as log:
        log.scan()
        rotated = tmp_path / "new.jsonl"
        write(rotated, TRICKY, COMPACT, torn=False)
        os.replace(rotated, path)  # same bytes, another file: not the one indexed
        assert log.filter(TrafficFilter.parse("provider:openai")).cancelled
        assert scan_range(str(path), 0, 10, TrafficFilter(), log._ino) is None


def test_a_file_cut_short_under_the_scan_is_not_reported(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    write(path, TRICKY, COMPACT, torn=False)
    with TrafficLog(path) as log:
        log.scan()
        os.truncate(path, path.stat().st_size // 2)
        assert log.filter(TrafficFilter.parse("status:ok")).cancelled


def test_a_broken_pool_falls_back_to_a_scan_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed mid-scan (the OOM killer, an operator) costs speed,
    not the filter."""
    path = tmp_path / "traffic.jsonl"
    write(path, TRICKY, COMPACT, torn=False)
    monkeypatch.setattr(traffic_scan, "PARALLEL_MIN", 0)
    real = rangescan.Scan
    calls: list[int | None] = []

    def scan(*args, workers=None, **kwargs):
        calls.append(workers)
        if workers != 1:
            raise BrokenProcessPool("a worker died")
        return real(*args, workers=workers, **kwargs)

    monkeypatch.setattr(rangescan, "Scan", scan)
    with TrafficLog(path) as log:
        result = log.filter(TrafficFilter.parse("provider:openai"))
    assert list(result.lines) == [0, 4, 5, 7, 9] and calls == [None, 1]


@pytest.mark.parametrize(
    "odd",
    [
        {},
        {"tokens_in": None, "status": 0},
        {"tokens_in": -3, "tokens_out": True, "status": "200"},
        {"status": None, "tokens_out": 1.5},
        {"status": 503, "tokens_in": "12"},
    ],
)
def test_chunk_totals_count_as_each_line_would(odd: dict) -> None:
    """The C-speed totals of a chunk agree with `Totals.add_line` line by
    line, whatever the values (the fast path reads them as raw bytes)."""
    records = [rec(n, status=(200, 404, 0, 529)[n % 4], tokens_in=n) for n in range(30)]
    lines = [json.dumps(r | odd if n % 3 else r) for n, r in enumerate(records)]
    chunk = "\n".join(lines).encode() + b"\n"
    fast, slow = Totals(), Totals()
    assert chunk_totals(chunk, fast)[0] == 30
    for line in chunk.split(b"\n")[:-1]:
        slow.add_line(line)
    assert fast == slow


def test_workers_yield_the_cpu_to_the_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "traffic.jsonl"
    write(path, TRICKY * 20, COMPACT, torn=False)
    monkeypatch.setattr(traffic_scan, "PARALLEL_MIN", 0)
    monkeypatch.setattr(traffic_scan, "RANGE", 500)
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    with TrafficLog(path) as log:
        assert len(log.filter(TrafficFilter.parse("status:ok")).lines) == 20 * 8
    workers = [os.getpriority(os.PRIO_PROCESS, w.pid) for w in rangescan.worker_stats()]
    assert os.getpriority(os.PRIO_PROCESS, 0) == ours
    assert max(workers) >= ours + rangescan.WORKER_NICE or max(workers) == 19


def test_a_count_again_reads_only_the_lines_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "traffic.jsonl"
    write(path, TRICKY, COMPACT, torn=False)
    starts: list[int] = []
    real = traffic_scan.scan_ranges

    def spy(path, flt, ino, start, *args):
        starts.append(start)
        return real(path, flt, ino, start, *args)

    monkeypatch.setattr(traffic_log, "scan_ranges", spy)
    with TrafficLog(path) as log:
        first = log.totals()
        size = path.stat().st_size
        with open(path, "ab") as f:
            f.write(b"".join(json.dumps(r).encode() + b"\n" for r in TRICKY[:3]))
        assert log.poll().appended == 3
        again = log.totals()
        assert starts == [0, size]
        assert again == whole_count(path) != first
        again.calls += 100  # the caller's copy: the kept count is not touched
        assert log.totals() == whole_count(path)
        assert log.totals(end_line=2) == whole_count(path, 2)  # a shorter count: from 0
        assert starts[-1] == 0


def whole_count(path: Path, end_line: int | None = None) -> Totals:
    with TrafficLog(path) as log:
        log.scan()
        return Totals() if end_line == 0 else log.totals(end_line=end_line)
