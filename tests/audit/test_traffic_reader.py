"""The traffic.jsonl reader: index from the end, pread lines, torn and
malformed lines, follow with truncation and rotation, filters and totals,
and `cftui traffic`."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cfproxies.record import new_record

from cftui.audit.traffic.daily import DailyCounter
from cftui.audit.traffic.fields import field_of, header_value
from cftui.audit.traffic.filter import TrafficFilter
from cftui.audit.traffic.log import TrafficLog
from cftui.botinit import init_bot
from cftui.fleet import FleetHome

T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC).timestamp()


def make_record(n: int, **over: object) -> dict:
    providers = ("anthropic", "openai", "gemini")
    rec = new_record(
        bot="alpha", provider=providers[n % 3], method="POST", path="/v1/x", epoch=T0 + n
    )
    rec.update(
        model=("claude-sonnet-4-5", "gpt-4o-mini", "gemini-2.5-flash")[n % 3],
        status=500 if n % 10 == 9 else 200,
        tokens_in=100 + n,
        tokens_out=10,
        request={"model": "decoy-model", "messages": [{"content": f"call number {n}"}]},
        response={"text": f"answer {n}", "status": 404},
    )
    rec.update(over)
    return rec


def write_records(path: Path, records: list[dict], mode: str = "ab") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode) as f:
        for rec in records:
            f.write(json.dumps(rec).encode() + b"\n")


def wait_for(predicate, timeout: float = 2.0) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)
    return time.monotonic() - started


@pytest.fixture
def traffic(tmp_path: Path) -> Path:
    path = tmp_path / "traffic.jsonl"
    write_records(path, [make_record(n) for n in range(100)])
    return path


def test_index_lists_every_record_in_order(traffic: Path) -> None:
    with TrafficLog(traffic) as log:
        assert log.scan()
        assert len(log) == 100
        assert log.record(0)["tokens_in"] == 100
        assert log.record(99)["tokens_in"] == 199
        assert [r["tokens_in"] for _, r in log.tail(3)] == [197, 198, 199]


def test_newest_lines_are_known_before_the_scan_reaches_the_start(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    write_records(path, [make_record(n) for n in range(20000)])
    log = TrafficLog(path)
    log.open()
    seen: list[int] = []
    log.scan(progress=lambda f: seen.append(len(log)))
    assert seen[0] < 20000 or len(seen) == 1  # batches arrive before the end
    assert len(log) == 20000
    assert log.record(len(log) - 1)["tokens_in"] == 100 + 19999
    log.close()


def test_torn_last_line_is_not_a_record_until_completed(traffic: Path) -> None:
    line = json.dumps(make_record(100)).encode()
    with open(traffic, "ab") as f:
        f.write(line[:50])
    with TrafficLog(traffic) as log:
        log.scan()
        assert len(log) == 100
        with open(traffic, "ab") as f:
            f.write(line[50:] + b"\n")
        assert log.poll().appended == 1
        assert log.record(100)["tokens_in"] == 200


def test_malformed_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    write_records(path, [make_record(0)])
    with open(path, "ab") as f:
        f.write(b'{"v": 1, "torn\n[1, 2]\n\xff\xfe\n')
    write_records(path, [make_record(1)])
    with TrafficLog(path) as log:
        log.scan()
        assert len(log) == 5
        records = [log.record(i) for i in range(len(log))]
        assert [r is not None for r in records] == [True, False, False, False, True]
        assert len(log.malformed) == 3


def test_follower_sees_an_append_within_250_ms(traffic: Path) -> None:
    log = TrafficLog(traffic)
    log.open()
    log.scan()
    stop = threading.Event()
    thread = threading.Thread(target=log.follow, args=(lambda c: None, stop), daemon=True)
    thread.start()
    try:
        write_records(traffic, [make_record(500)])
        elapsed = wait_for(lambda: len(log) == 101)
        assert elapsed < 0.25
        assert log.record(100)["tokens_in"] == 600
    finally:
        stop.set()
        thread.join()
        log.close()


def test_truncation_starts_over(traffic: Path) -> None:
    with TrafficLog(traffic) as log:
        log.scan()
        write_records(traffic, [make_record(7)], mode="wb")
        change = log.poll()
        assert change.reset
        assert len(log) == 1
        assert log.record(0)["tokens_in"] == 107


def test_rotation_is_followed_to_the_new_file(traffic: Path) -> None:
    with TrafficLog(traffic) as log:
        log.scan()
        os.rename(traffic, traffic.with_suffix(".1"))
        assert not log.poll()  # gone, the new file not there yet
        write_records(traffic, [make_record(1), make_record(2)])
        change = log.poll()
        assert change.reset
        assert [log.record(i)["tokens_in"] for i in range(len(log))] == [101, 102]


def test_a_file_that_appears_later_is_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    log = TrafficLog(path)
    assert not log.open()
    assert len(log) == 0
    write_records(path, [make_record(3)])
    assert log.poll().reset
    assert log.record(0)["tokens_in"] == 103
    log.close()


def test_header_values_come_from_the_top_level_not_the_bodies() -> None:
    line = json.dumps(make_record(0)).encode()
    assert header_value(line, "model") == "claude-sonnet-4-5"
    assert header_value(line, "status") == 200
    # A writer that puts the bodies first: the reader parses the whole line.
    rec = make_record(0)
    reordered = {"request": rec["request"], **rec}
    line = json.dumps(reordered).encode()
    assert field_of(line, "model") == "claude-sonnet-4-5"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("provider:openai", [n for n in range(100) if n % 3 == 1]),
        ("model:GEMINI", [n for n in range(100) if n % 3 == 2]),
        ("status:5xx", [n for n in range(100) if n % 10 == 9]),
        ("status:err provider:anthropic", [n for n in range(100) if n % 30 == 9]),
        ("call number 42", [42]),
        ("ANSWER 7", [7, *range(70, 80)]),
        ("decoy-model", list(range(100))),
        ("model:decoy", []),
        ("status:404", []),
    ],
)
def test_filter_matches_the_right_calls(traffic: Path, spec: str, expected: list[int]) -> None:
    with TrafficLog(traffic) as log:
        progress: list[float] = []
        result = log.filter(TrafficFilter.parse(spec), progress=progress.append)
        assert list(result.lines) == expected
        assert result.totals.calls == len(expected)
        assert result.totals.tokens_in == sum(100 + n for n in expected)
        assert progress[-1] == 1.0


def test_filter_finds_non_ascii_text_in_escaped_json(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    write_records(path, [make_record(0, error="Délai dépassé"), make_record(1)])
    with TrafficLog(path) as log:
        assert list(log.filter(TrafficFilter.parse("délai")).lines) == [0]


def test_filter_agrees_with_the_record_matcher(traffic: Path) -> None:
    flt = TrafficFilter.parse("provider:gemini status:ok answer")
    with TrafficLog(traffic) as log:
        fast = list(log.filter(flt).lines)
        log.scan()
        slow = [i for i in range(len(log)) if flt.matches(log.record(i))]
    assert fast == slow and fast


def test_filter_can_be_cancelled(traffic: Path) -> None:
    with TrafficLog(traffic) as log:
        assert log.filter(TrafficFilter.parse("answer"), cancelled=lambda: True).cancelled


def test_bad_status_filter_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="bad status 'abc'"):
        TrafficFilter.parse("status:abc")


def test_totals_count_calls_tokens_and_errors(traffic: Path) -> None:
    with TrafficLog(traffic) as log:
        totals = log.totals()
    assert totals.calls == 100
    assert totals.tokens_in == sum(range(100, 200))
    assert totals.tokens_out == 1000
    assert totals.errors == 10


def test_daily_counter_counts_today_only_and_reads_appends(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    yesterday = [make_record(n, ts="2026-11-23T23:59:59.000Z") for n in range(5)]
    today = [make_record(n, ts="2026-11-24T00:00:01.000Z") for n in range(3)]
    write_records(path, yesterday + today)
    counter = DailyCounter(path)
    assert counter.update(now).calls == 3
    write_records(path, [make_record(9, ts="2026-11-24T11:00:00.000Z")])
    totals = counter.update(now)
    assert totals.calls == 4
    assert totals.tokens_in == 100 + 101 + 102 + 109


# --- cftui traffic ----------------------------------------------------------


@pytest.fixture
def fleet(home: FleetHome) -> FleetHome:
    init_bot(home, "alpha")
    write_records(home.traffic_log("alpha"), [make_record(n) for n in range(5)])
    return home


def test_cli_traffic_prints_every_call_newest_last(fleet: FleetHome, cli) -> None:
    r = cli("traffic", "alpha")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert len(lines) == 5
    assert "in    104" in lines[-1]


def test_cli_traffic_json_is_one_record_a_line(fleet: FleetHome, cli) -> None:
    with open(fleet.traffic_log("alpha"), "ab") as f:
        f.write(b"not json\n")
    r = cli("traffic", "alpha", "--json", "--tail", "2")
    assert r.code == 0
    assert [json.loads(x)["tokens_in"] for x in r.out.splitlines()] == [103, 104]


def test_cli_traffic_reports_skipped_lines(fleet: FleetHome, cli) -> None:
    with open(fleet.traffic_log("alpha"), "ab") as f:
        f.write(b"not json\n")
    r = cli("traffic", "alpha")
    assert r.code == 0
    assert "skipped 1 malformed line" in r.err


def test_cli_traffic_refuses_an_unknown_bot_in_one_line(fleet: FleetHome, cli) -> None:
    r = cli("traffic", "nobody")
    assert r.code == 2
    assert r.err.count("\n") == 1 and "nobody" in r.err


def test_cli_traffic_refuses_a_negative_tail(fleet: FleetHome, cli) -> None:
    r = cli("traffic", "alpha", "--tail", "-1")
    assert r.code == 2 and r.err.count("\n") == 1


def test_cli_traffic_without_a_log_says_so(home: FleetHome, cli) -> None:
    init_bot(home, "beta")
    r = cli("traffic", "beta")
    assert r.code == 0 and r.out == ""
    assert "no traffic yet" in r.err
