"""The egress proxy's ledger of refused requests on hostile input (issue 18):
the hosts, methods and paths in it are the agent's.

- any bytes give requests or a one-line note, never an exception;
- a well-formed ledger whose entries have any JSON in any field: every
  entry is either a request with the checked types and bounds or skipped
  and counted, so `requests + skipped` is the number of entries.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from cftui.inert import inert
from cftui.proposals.egress_requests import parse_ledger

from .strategies import FUZZ

FIELDS = ("key", "host", "port", "connect", "count", "first", "last")
OPTIONAL = ("method", "path", "rule", "suggest")
GOOD = {
    "key": "api.example.com:443",
    "host": "api.example.com",
    "port": 443,
    "connect": True,
    "count": 2,
    "first": "2026-12-02T05:00:00.123Z",
    "last": "2026-12-02T05:01:00.456Z",
    "method": None,
    "path": None,
    "rule": None,
    "suggest": "api.example.com:443",
}
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["2026-12-02T05:00:00Z", "2026-12-02T05:00:00", "[b]x[/b]", "\x1b]0;x\x07"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def entries(draw: st.DrawFn) -> object:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    entry = dict(GOOD)
    for name in draw(st.lists(st.sampled_from(FIELDS + OPTIONAL), max_size=4)):
        if draw(st.booleans()):
            entry[name] = draw(json_values)
        else:
            entry.pop(name, None)
    entry["key"] = (
        draw(st.text(min_size=1, max_size=20)) if draw(st.booleans()) else entry.get("key")
    )
    return entry


def _one_line(note: str | None) -> None:
    assert note is None or "\n" not in inert(note)


@FUZZ
@given(st.binary(max_size=2048))
def test_any_bytes_are_requests_or_a_note(data: bytes) -> None:
    ledger = parse_ledger("bot", data)
    _one_line(ledger.note)


@FUZZ
@given(st.lists(entries(), max_size=12))
def test_every_entry_is_a_checked_request_or_counted(items: list) -> None:
    data = json.dumps({"v": 1, "bot": "bot", "dropped": 0, "requests": items}).encode()
    ledger = parse_ledger("bot", data)
    if ledger.error:  # e.g. an integer beyond 64 bits: the whole file refused
        assert ledger.requests == ()
        return
    assert len(ledger.requests) + ledger.skipped == len(items)
    _one_line(ledger.note)
    for r in ledger.requests:
        assert isinstance(r.host, str) and 0 < len(r.host) <= 255
        assert r.port is None or (type(r.port) is int and 0 <= r.port <= 65535)
        assert isinstance(r.count, int) and r.count >= 1 and r.last_at >= r.first_at
        assert r.suggest is None or (isinstance(r.suggest, str) and r.suggest)
