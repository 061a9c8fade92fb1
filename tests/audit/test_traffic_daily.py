"""`DailyCounter`: today's calls and tokens found from the end of the file
by blocks, added up by the filter's range scan (here and in worker
processes), appends read by chunks, and callers in two threads at once."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cftui.audit.traffic import lineio
from cftui.audit.traffic import scan as traffic_scan
from cftui.audit.traffic.daily import DailyCounter

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def rec(n: int, day: int, **over: object) -> dict:
    out = {
        "v": 1,
        "id": f"{n:032x}",
        "ts": f"2026-11-{day:02d}T{n % 24:02d}:00:00.000Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "status": 500 if n % 7 == 0 else 200,
        "tokens_in": n,
        "tokens_out": 1,
        "request": {"messages": [{"content": "x" * (n % 300)}]},
        "error": None,
    }
    out.update(over)
    return out


def write(path: Path, records: list[dict], tail: bytes = b"") -> None:
    with open(path, "ab") as f:
        f.write(b"".join(json.dumps(r).encode() + b"\n" for r in records) + tail)


def expected(records: list[dict]) -> tuple[int, int, int]:
    today = [r for r in records if r["ts"] >= "2026-11-24"]
    errors = sum(1 for r in today if r["status"] >= 400)
    return len(today), sum(r["tokens_in"] for r in today), errors


@pytest.fixture(params=["here", "blocks", "workers"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """As is; blocks smaller than a line; worker processes over tiny ranges."""
    if request.param == "blocks":
        monkeypatch.setattr(lineio, "CHUNK", 100)
    if request.param == "workers":
        monkeypatch.setattr(traffic_scan, "PARALLEL_MIN", 0)
        monkeypatch.setattr(traffic_scan, "RANGE", 3000)
    return request.param


@pytest.mark.parametrize("yesterday", [0, 1, 40])
def test_today_is_found_from_the_end_and_added_up(
    tmp_path: Path, mode: str, yesterday: int
) -> None:
    path = tmp_path / "traffic.jsonl"
    records = [rec(n, 23) for n in range(yesterday)] + [rec(n, 24) for n in range(100, 160)]
    # a line without a time, a malformed one and a torn tail: none is a call
    write(path, records[:20], b'{"v": 1, "note": "no ts"\n{not json\n')
    write(path, records[20:], b'{"v": 1, "ts": "2026-11-24T')
    totals = DailyCounter(path).update(NOW)
    assert (totals.calls, totals.tokens_in, totals.errors) == expected(records)


def test_a_line_torn_in_the_middle_of_the_file_is_not_a_call(tmp_path: Path, mode: str) -> None:
    """A proxy that died mid-write leaves a torn line, then the next one ends
    it with a newline and goes on: a line cut in its last field still holds
    every key the fast path sums, and must not count."""
    path = tmp_path / "traffic.jsonl"
    records = [rec(n, 24) for n in range(100, 160)]
    torn = json.dumps(rec(999, 24)).encode()[:-8] + b"\n"  # cut in "error": null
    write(path, records[:30], torn)
    write(path, records[30:])
    totals = DailyCounter(path).update(NOW)
    assert (totals.calls, totals.tokens_in, totals.errors) == expected(records)


def test_appends_are_read_forward_by_chunks(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "traffic.jsonl"
    records = [rec(n, 23) for n in range(10)] + [rec(n, 24) for n in range(10, 20)]
    write(path, records)
    counter = DailyCounter(path)
    counter.update(NOW)
    more = [rec(n, 24) for n in range(20, 80)]
    write(path, more, b'{"v": 1, "ts": "2026-11-24T')  # ends torn: counted once whole
    totals = counter.update(NOW)
    assert (totals.calls, totals.tokens_in, totals.errors) == expected(records + more)


def test_two_threads_at_once_count_each_call_once(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    records = [rec(n, 24) for n in range(2000)]
    write(path, records)
    counter = DailyCounter(path)
    seen = []
    threads = [
        threading.Thread(target=lambda: seen.append(counter.update(NOW).calls)) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [2000] * 4 and counter.totals.tokens_in == sum(range(2000))
