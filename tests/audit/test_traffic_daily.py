"""`DailyCounter`: today's calls and tokens found from the end of the file
by blocks, added up by the filter's range scan (here and in worker
processes), appends read by chunks, and callers in two threads at once."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cfproxies.jsoncodec import dumps_line
from cfproxies.record import new_record, start_line
from cfproxies.today import tokens_today

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


def proxy_lines(day: int, first: int, count: int, *, open_every: int = 0) -> bytes:
    """Calls as the proxy writes them (its own encoder, start and end
    lines): every `open_every`-th call's end is missing, as if its proxy died."""
    out = []
    for n in range(first, first + count):
        epoch = datetime(2026, 11, day, n % 24, n % 60, tzinfo=UTC).timestamp()
        record = new_record(bot="bot1", provider="openai", method="POST", path="/v1", epoch=epoch)
        record.update(model="gpt-4o-mini", status=200, tokens_in=n, tokens_out=n % 5)
        out.append(dumps_line(start_line(record, tokens_est=1000 + n)))
        if not (open_every and n % open_every == 0):
            out.append(dumps_line(record))
    return b"".join(out)


@pytest.mark.parametrize("older", [False, True], ids=["two-lines", "older-log"])
def test_the_budget_and_the_fleet_view_count_the_same_tokens_today(
    tmp_path: Path, mode: str, older: bool
) -> None:
    """`cfproxies.today` is the one rule: the proxy's budget read back from
    the whole log and the reader's count (its fast scan, then the appends)
    agree, on unfinished calls and yesterday's lines too."""
    path = tmp_path / "traffic.jsonl"

    def append(data: bytes) -> None:
        if older:  # one spaced line a call, no phase: a log written before start lines
            calls = [json.loads(x) for x in data.splitlines()]
            data = b"".join(
                json.dumps({k: v for k, v in c.items() if k != "phase"}).encode() + b"\n"
                for c in calls
                if c["phase"] == "end"
            )
        with open(path, "ab") as f:
            f.write(data)

    append(proxy_lines(23, 0, 40, open_every=7) + proxy_lines(24, 40, 60, open_every=9))
    counter = DailyCounter(path)
    first = counter.update(NOW)
    assert first.unfinished == (0 if older else len([n for n in range(40, 100) if n % 9 == 0]))
    assert first.tokens == tokens_today(path, "bot1", NOW.timestamp())
    append(proxy_lines(24, 100, 30, open_every=4))
    again = counter.update(NOW)
    assert again.tokens == tokens_today(path, "bot1", NOW.timestamp()) > first.tokens
    assert again == DailyCounter(path).update(NOW)  # the appends read as a first count would
