"""Issue #15, leak 5, the reader's side: a call is a start line and an end
line with one id (as the proxy writes them). Every view and total pairs
them: a finished call once (its end), an unfinished one (a start with no
end: its proxy died) once too, counted as a call, a failure and its
estimate; the same in worker processes, across range cuts, counted again
after appends, and in the fleet's daily count."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cfproxies.jsonl import encode_line
from cfproxies.record import new_record, start_line

from cftui.audit.traffic import scan as traffic_scan
from cftui.audit.traffic.daily import DailyCounter
from cftui.audit.traffic.filter import TrafficFilter
from cftui.audit.traffic.log import TrafficLog
from cftui.audit.traffic.totals import Totals

NOW = datetime.now(UTC).timestamp()


def call(n: int, provider: str = "anthropic", epoch: float = NOW) -> dict[str, Any]:
    rec = new_record(bot="alpha", provider=provider, method="POST", path="/v1/m", epoch=epoch)
    rec.update(model=f"model-{n}", status=200, tokens_in=100, tokens_out=10, request={"n": n})
    return rec


def start(rec: dict[str, Any], est: int = 1000) -> bytes:
    return encode_line(start_line(rec, est))


def end(rec: dict[str, Any]) -> bytes:
    return encode_line(rec)


def legacy(n: int) -> bytes:
    """A whole-call line as the proxy wrote them before start lines (no phase)."""
    rec = call(n)
    del rec["phase"]
    return encode_line(rec)


@pytest.fixture
def log_file(tmp_path: Path) -> tuple[Path, dict[str, dict]]:
    """a, b, d finish (b interleaved with c and d); c never does; one old line."""
    a, b, c, d = call(1), call(2, "openai"), call(3, "openai"), call(4)
    path = tmp_path / "traffic.jsonl"
    path.write_bytes(
        legacy(0) + start(a) + start(b) + end(a) + start(c, est=777) + start(d) + end(d) + end(b)
    )
    return path, {"a": a, "b": b, "c": c, "d": d}


def test_a_finished_call_shows_once_and_an_unfinished_one_once(log_file):
    path, calls = log_file
    with TrafficLog(path) as log:
        log.scan()
        shown = [r for i in range(len(log)) if (r := log.record(i)) is not None]
        assert [r.get("model") for r in shown] == [
            "model-0",
            "model-1",
            "model-3",
            "model-4",
            "model-2",
        ]
        (stuck,) = [r for r in shown if r.get("unfinished")]
        assert stuck["id"] == calls["c"]["id"] and stuck["status"] == 0
        assert "unfinished" in stuck["error"]
        assert not log.malformed  # hidden start lines are not malformed ones
        assert [log.is_hidden(i) for i in range(len(log))] == [
            False,
            True,
            True,
            False,
            False,
            True,
            False,
            False,
        ]
        assert [r.get("model") for _i, r in log.tail(2)] == ["model-4", "model-2"]
        assert next(r.get("model") for _i, r in log.tail(4)) == "model-1"


@pytest.mark.parametrize("where", ["here", "tiny ranges", "workers"])
def test_totals_and_filters_pair_starts_and_ends(log_file, monkeypatch, where):
    path, _calls = log_file
    if where != "here":  # every line a range of its own: the pairs cross the cuts
        monkeypatch.setattr(traffic_scan, "RANGE", 200)
    if where == "workers":
        monkeypatch.setattr(traffic_scan, "PARALLEL_MIN", 0)
    with TrafficLog(path) as log:
        log.scan()
        t = log.totals()
        assert (t.calls, t.unfinished, t.errors) == (5, 1, 1)
        assert (t.tokens_in, t.tokens_est, t.tokens) == (400, 777, 400 + 40 + 777)
        err = log.filter(TrafficFilter.parse("status:err"))
        assert list(err.lines) == [4] and err.totals.calls == 1  # c's start line
        openai = log.filter(TrafficFilter.parse("provider:openai"))
        assert list(openai.lines) == [4, 7]  # c (unfinished) and b's end, once each
        assert (openai.totals.calls, openai.totals.unfinished) == (2, 1)
        text = log.filter(TrafficFilter.parse("model-2"))
        assert list(text.lines) == [7]  # b's start line is not shown: its end is
        anthropic = log.filter(TrafficFilter.parse("provider:anthropic"))
        assert anthropic.totals.unfinished == 0 and list(anthropic.lines) == [0, 3, 6]


def test_an_end_appended_later_closes_the_call_in_every_count(log_file):
    path, calls = log_file
    daily = DailyCounter(path)
    with TrafficLog(path) as log:
        log.scan()
        assert log.totals().unfinished == 1
        assert daily.update().unfinished == 1
        assert daily.totals.tokens_est == 777
        with open(path, "ab") as f:
            f.write(end(calls["c"]))
        assert log.poll().appended == 1
        t = log.totals()  # counted again from where the last count stopped
        assert (t.calls, t.unfinished, t.tokens_est, t.tokens_in) == (5, 0, 0, 500)
        d = daily.update()
        assert (d.calls, d.unfinished, d.tokens_in) == (5, 0, 500)
        assert all(log.record(i) is None or not log.record(i).get("unfinished") for i in range(9))


def test_a_count_up_to_a_line_leaves_a_call_ending_later_to_the_follower(log_file):
    # The TUI counts the lines before its follower started; the follower
    # counts the rest with `add_line`. A call whose end is after the cut is
    # the follower's: counted once, as its end.
    path, _calls = log_file
    with TrafficLog(path) as log:
        log.scan()
        before = log.totals(end_line=4)  # legacy, a, b's start, a's end
        assert (before.calls, before.unfinished) == (2, 0)
        follower = Totals()
        for i in range(4, len(log)):
            follower.add_line(log.raw(i))
        before.add(follower)
        assert (before.calls, before.unfinished) == (4, 0)  # c, unfinished, is a whole pass's
        flt = TrafficFilter()
        assert [flt.matches_line(log.raw(i)) for i in range(len(log))] == [
            True,
            False,
            False,
            True,
            False,
            False,
            True,
            True,
        ]


def test_the_daily_count_counts_todays_unfinished_calls(tmp_path: Path):
    yesterday = NOW - 86400
    old, today = call(1, epoch=yesterday), call(2)
    path = tmp_path / "traffic.jsonl"
    path.write_bytes(start(old, 50) + end(old) + start(today, 60))
    d = DailyCounter(path).update()
    assert (d.calls, d.unfinished, d.tokens_est) == (1, 1, 60)


def test_an_old_log_without_start_lines_is_read_as_before(tmp_path: Path):
    path = tmp_path / "traffic.jsonl"
    path.write_bytes(b"".join(legacy(n) for n in range(5)))
    with TrafficLog(path) as log:
        log.scan()
        t = log.totals()
        assert (t.calls, t.unfinished, t.tokens) == (5, 0, 550)
        assert all(log.record(i) is not None for i in range(5))


def test_a_forged_start_inside_a_body_is_not_a_start(tmp_path: Path):
    # The agent controls bodies; a start line's prefix inside one is a
    # string (its quotes escaped), or a nested object: never at a line start.
    rec = call(1)
    fake = start(call(9)).decode().strip()
    rec["request"] = {"text": fake, "nested": {"v": 1, "phase": "start", "id": "0" * 32}}
    path = tmp_path / "traffic.jsonl"
    path.write_bytes(end(rec))
    with TrafficLog(path) as log:
        log.scan()
        t = log.totals()
        assert (t.calls, t.unfinished) == (1, 0)
        assert os.path.getsize(path) > 0 and log.record(0)["model"] == "model-1"
