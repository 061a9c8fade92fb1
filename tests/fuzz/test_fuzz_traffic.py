"""The traffic.jsonl reader on hostile lines (issue 15, fuzzing).

Every string of a record may be the agent's (its model names, its bodies),
and a torn or garbled line must be skipped and counted, never raise. The
reader's fast paths (top-level keys found with `find`, whole-chunk regex
sums) must agree with a full parse of each line; a body holding the keys the
fast paths look for must not fool them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cfproxies.record import new_record, parse_record_line
from hypothesis import given
from hypothesis import strategies as st

from cftui.audit.traffic.display import format_call
from cftui.audit.traffic.filter import TrafficFilter
from cftui.audit.traffic.log import TrafficLog
from cftui.inert import inert

from .strategies import FUZZ

tricky_text = st.lists(
    st.sampled_from([*list('ab"\\{}[],: \n\t\x1b\u202e\u2028é🦀'), '"status":', '"tokens_in":']),
    max_size=8,
).map("".join)
scalar = st.none() | st.booleans() | st.integers(-(2**66), 2**66) | st.floats() | tricky_text
# Bodies that hold the very keys the fast paths look for, nested or in strings.
body = st.recursive(
    scalar,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["status", "tokens_in", "tokens_out", "model", "x"]), inner
        )
    ),
    max_leaves=10,
)


@st.composite
def records(draw: st.DrawFn) -> dict:
    rec = new_record(bot="red", provider="anthropic", method="POST", path="/v1/m", epoch=1.7e9)
    rec.update(
        provider=draw(st.sampled_from(["anthropic", "openai", "gemini"]) | tricky_text),
        model=draw(st.none() | tricky_text),
        # HTTP statuses (the byte-level filter and `matches` disagree on `true`, on 1-99 and
        # on 600 and up, which the proxy never writes: see the report on issue 15)
        status=draw(st.just(0) | st.integers(100, 599) | st.none() | tricky_text),
        tokens_in=draw(st.integers(0, 10**6) | scalar),
        tokens_out=draw(st.integers(0, 10**6) | scalar),
        error=draw(st.none() | tricky_text),
        request=draw(body),
        response=draw(body),
    )
    return rec


def _encode(rec: dict, compact: bool) -> bytes:
    sep = (",", ":") if compact else (", ", ": ")
    return json.dumps(rec, separators=sep, ensure_ascii=False).encode("utf-8", "surrogatepass")


garbage = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")) | st.sampled_from(
    [b"", b"{", b'{"v":1', b"[1]", b'{"v":"1"}', b"null", b"{" * 5000, b"[" * 100_000]
)


@st.composite
def log_lines(draw: st.DrawFn) -> list[bytes]:
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.booleans()):
            lines.append(_encode(draw(records()), draw(st.booleans())))
        else:
            lines.append(draw(garbage))
    return lines


def _reference(lines: list[bytes], flt: TrafficFilter) -> tuple[list[int], tuple[int, ...]]:
    """The filter and totals from a full parse of every line, as the reader promises."""
    matched, calls, tin, tout, errors = [], 0, 0, 0, 0
    for i, line in enumerate(lines):
        rec = parse_record_line(line)
        if rec is None or not flt.matches(rec) or not flt.matches_line(line):
            continue
        matched.append(i)
        calls += 1
        tin += rec.get("tokens_in") if isinstance(rec.get("tokens_in"), int) else 0
        tout += rec.get("tokens_out") if isinstance(rec.get("tokens_out"), int) else 0
        status = rec.get("status")
        errors += not isinstance(status, int) or status >= 400 or status == 0
    return matched, (calls, tin, tout, errors)


def _write(tmp: Path, lines: list[bytes], torn_tail: bytes) -> Path:
    path = tmp / "traffic.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines) + torn_tail)
    return path


@FUZZ
@given(lines=log_lines(), torn=st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")))
def test_any_line_is_read_or_skipped_never_raised(tmp_path_factory, lines, torn) -> None:
    path = _write(tmp_path_factory.mktemp("t"), lines, torn)
    with TrafficLog(path) as log:
        log.open()
        log.scan()
        assert len(log) == len(lines)
        for i in range(len(log)):
            rec = log.record(i)
            assert rec is None or isinstance(rec, dict)
            if rec is not None:
                line = inert(format_call(rec))
                assert "\n" not in line and line.isprintable()
        assert len(log.malformed) == sum(
            1 for line in lines if line.strip() and parse_record_line(line) is None
        )
        log.tail(3)


def _looks_whole(line: bytes) -> bool:
    s = line.strip()
    return s.startswith(b"{") and s.endswith(b"}")


@FUZZ
@given(
    lines=log_lines().map(
        # By design the fast totals count a line that looks whole ({...}) as a
        # call without parsing it; the agreement is over records and torn lines.
        lambda lines: [x for x in lines if parse_record_line(x) is not None or not _looks_whole(x)]
    ),
    spec=st.sampled_from(["", "status:err", "status:ok", "status:5xx", "provider:openai", "a"]),
)
def test_fast_filter_and_totals_agree_with_a_full_parse(tmp_path_factory, lines, spec) -> None:
    path = _write(tmp_path_factory.mktemp("t"), lines, b"")
    flt = TrafficFilter.parse(spec)
    with TrafficLog(path) as log:
        log.open()
        result = log.filter(flt)
        got = result.totals
        matched, want = _reference(lines, flt)
        assert (got.calls, got.tokens_in, got.tokens_out, got.errors) == want
        if not flt.empty:
            assert list(result.lines or []) == matched


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_a_line_nested_past_the_parser_is_skipped_and_counted(tmp_path, depth) -> None:
    """json.loads raised RecursionError out of the reader (found by fuzzing)."""
    deep = b'{"v":1,"x":' + b"[" * depth + b"]" * depth + b"}"
    assert parse_record_line(deep) is None
    call = new_record(bot="r", provider="p", method="GET", path="/", epoch=1.7e9)
    path = _write(tmp_path, [deep, _encode(call, True)], b"")
    with TrafficLog(path) as log:
        log.open()
        log.scan()
        assert log.record(0) is None and log.record(1) is not None
        assert len(log.malformed) == 1
        # The fast totals take a line that looks whole ({...}) for a failed call.
        assert log.totals().errors == 2
