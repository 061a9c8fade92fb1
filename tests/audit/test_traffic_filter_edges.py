"""The traffic filter's fast scan on lines that could fool a byte pattern:
needles inside bodies, escaped strings, odd key order and spacing, torn
lines, lines cut by chunk boundaries. Each case is checked against the
parsed records (`TrafficFilter.matches`), which cannot be fooled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cftui.audit.traffic import lineio
from cftui.audit.traffic.filter import TrafficFilter
from cftui.audit.traffic.log import TrafficLog


def rec(n: int, provider: str = "anthropic", model: str = "claude-sonnet-4-5", **over: object):
    out = {
        "v": 1,
        "id": f"{n:032x}",
        "ts": f"2026-11-24T06:00:{n % 60:02d}.000Z",
        "bot": "alpha",
        "provider": provider,
        "method": "POST",
        "path": "/v1/messages",
        "model": model,
        "status": 200,
        "tokens_in": 100 + n,
        "tokens_out": 10,
        "request": {"model": model, "messages": [{"content": f"call {n}"}]},
        "response": {"text": f"answer {n}"},
        "error": None,
    }
    out.update(over)
    return out


COMPACT = {"ensure_ascii": False, "separators": (",", ":")}  # our writer (cfproxies.jsonl)
SPACED: dict = {}  # json.dumps defaults: `", "` and `": "`, ASCII escapes

TRICKY = [
    rec(0, "openai", "gpt-4o-mini"),
    # The provider's needle inside the bodies, as a nested key and as text.
    rec(1, request={"provider": "openai", "model": "gemini-x"}),
    rec(2, response={"text": '"provider": "openai", "model": "gemini"'}),
    # An escaped quote makes a key that merely ends in "model".
    rec(3, **{'x"model': "gemini-pro", 'x"provider': "openai"}),
    # Bodies first: the top-level fields come after a nested value.
    {"request": {"model": "decoy"}, **rec(4, "openai", "Gemini-2.5-Pro")},
    # A bracket inside a string before the fields (the header ends early).
    {"path": "/v1/[beta]/{x}", **rec(5, "openai", "gemini-2.5-flash", path="/v1/[beta]/{x}")},
    rec(6, "gemini", "GEMINI-2.5-FLASH", status=503, error="Délai dépassé"),
    rec(7, "openai", "gpt-4o", status=0),
    rec(8, 'open"ai', "gpt\\gemini"),  # escapes inside the values
    rec(9, "openai", "o3", tokens_in=None, status=429),
    rec(10, "gemini", response={"text": "Found the NeEdLe at 4711"}),
]


def write(path: Path, records: list[dict], style: dict, torn: bool = True) -> None:
    lines = [json.dumps(r, **style).encode() for r in records]
    if torn:
        # A record cut mid-write (the writer died) holding every needle, and a
        # torn last line not yet completed.
        cut = json.dumps(rec(99, "openai", "gemini-torn", status=500), **style).encode()
        lines.insert(3, cut[: len(cut) // 2])
        lines.append(cut[:-1])
    path.write_bytes(b"\n".join(lines) + (b"" if torn else b"\n"))


def slow(log: TrafficLog, flt: TrafficFilter) -> list[int]:
    out = []
    for i in range(len(log)):
        record = log.record(i)
        if record is not None and flt.matches(record):
            out.append(i)
    return out


SPECS = [
    "provider:openai",
    'provider:open"ai',
    "model:gemini",
    "model:GEMINI-2.5",
    "model:gpt",
    "status:5xx",
    "status:err",
    "status:ok",
    "status:429",
    "provider:openai model:gemini",
    "provider:openai status:err",
    "model:gemini status:5xx",
    "délai",
    "needle",  # in mixed case in the file
    "4711",  # no letters: searched as is
    "needle-absent",
]


@pytest.mark.parametrize("style", [COMPACT, SPACED], ids=["compact", "spaced"])
@pytest.mark.parametrize("spec", SPECS)
def test_fast_filter_agrees_with_parsed_records(tmp_path: Path, style: dict, spec: str) -> None:
    path = tmp_path / "traffic.jsonl"
    write(path, TRICKY, style)
    flt = TrafficFilter.parse(spec)
    with TrafficLog(path) as log:
        log.scan()
        expected = slow(log, flt)
        result = log.filter(flt)
        assert list(result.lines) == expected
        assert result.totals.calls == len(expected)
        assert result.totals.tokens_in == sum(
            t if isinstance(t := log.record(i)["tokens_in"], int) else 0 for i in expected
        )
        assert result.covered == len(log)


def test_a_needle_in_a_body_never_matches_a_field(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    write(path, TRICKY, COMPACT, torn=False)
    with TrafficLog(path) as log:
        openai = [
            log.record(i)["id"] for i in log.filter(TrafficFilter.parse("provider:openai")).lines
        ]
        gemini = [
            log.record(i)["id"] for i in log.filter(TrafficFilter.parse("model:gemini")).lines
        ]
    assert [int(x, 16) for x in openai] == [0, 4, 5, 7, 9]
    assert [int(x, 16) for x in gemini] == [4, 5, 6, 8]


def test_torn_lines_never_match(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    write(path, TRICKY, COMPACT)
    with TrafficLog(path) as log:
        for spec in ("model:gemini-torn", "status:500", "call 99"):
            assert list(log.filter(TrafficFilter.parse(spec)).lines) == []


@pytest.mark.parametrize("spec", ["provider:openai", "model:gemini", "status:err", "answer 1"])
def test_lines_cut_by_chunk_boundaries_are_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str
) -> None:
    monkeypatch.setattr(lineio, "CHUNK", 1000)  # smaller than a record: every line is cut
    path = tmp_path / "traffic.jsonl"
    write(path, TRICKY * 30, COMPACT)
    flt = TrafficFilter.parse(spec)
    with TrafficLog(path) as log:
        log.scan()
        expected = slow(log, flt)
        assert expected
        assert list(log.filter(flt).lines) == expected


def test_filter_stops_at_end_line(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    write(path, TRICKY, COMPACT, torn=False)
    with TrafficLog(path) as log:
        result = log.filter(TrafficFilter.parse("provider:openai"), end_line=6)
    assert list(result.lines) == [0, 4, 5] and result.covered == 6
