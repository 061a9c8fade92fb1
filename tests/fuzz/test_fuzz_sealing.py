"""The proxy's one-scan seal of a record writes exactly the line that the
field-by-field scrub would: for records of hostile strings (secrets, their
anchors in any case, secret key names, escapes, the proxy's own literals),
with and without user rules, and with a literal the encoder would escape."""

from __future__ import annotations

import copy
import json

from cfproxies.jsoncodec import dumps_line
from cfproxies.llm_proxy.sealing import sealed_line
from cfproxies.record import new_record, scrub_record, start_line
from cfproxies.scrub import Scrubber, parse_user_rules
from hypothesis import given
from hypothesis import strategies as st

from .strategies import FUZZ, provider_json

LITERAL = "bench-token-0123456789"
QUOTED_LITERAL = 'odd"literal\\key-0123'
SECRET_BITS = [
    "sk-ant-api03-" + "A" * 40,
    "SK-ANT-",
    "sk-proj-" + "b" * 30,
    "task-force",
    "Bearer abcdefgh12345678",
    "AKIA" + "Z" * 16,
    "ghp_" + "x" * 36,
    "-----BEGIN PRIVATE KEY-----abc",
    "cookie: a=b",
    "s\u212a-ant-api03-" + "A" * 20,  # a Kelvin sign, which lowercases to k
    "\\u0073k-",
    'a "quoted" word',
    "line\nbreak\x01",
    "api_key",
    "Authorization",
    LITERAL,
    QUOTED_LITERAL,
    "plain words",
    "ünïcödé 日本語",
]
strings = st.sampled_from(SECRET_BITS) | st.text(max_size=16)
pieces = st.lists(strings, min_size=1, max_size=3).map("".join)
bodies = st.recursive(
    pieces | provider_json,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["api_key", "Cookie", "text", "model"]) | pieces, inner)
    ),
    max_leaves=12,
)
USER_RULES, _ = parse_user_rules([{"pattern": "plain", "name": "p"}])
SCRUBBERS = {
    "builtin": Scrubber(literals=[LITERAL]),
    "quoted literal": Scrubber(literals=[LITERAL, QUOTED_LITERAL]),
    "user rules": Scrubber(USER_RULES, literals=[LITERAL]),
}


def _record(path: str, model: str | None, error: str | None, request, response) -> dict:
    rec = new_record(bot="b", provider="anthropic", method="POST", path=path, epoch=1.0)
    rec.update(model=model, error=error, request=request, response=response, status=200)
    rec["usage_raw"] = response if isinstance(response, dict) else {"input_tokens": 1}
    return rec


@FUZZ
@given(
    path=pieces,
    model=st.none() | pieces,
    error=st.none() | pieces,
    request=bodies,
    response=st.none() | bodies,
    ascii_raw=st.booleans(),
    which=st.sampled_from(sorted(SCRUBBERS)),
)
def test_the_one_scan_seal_writes_what_the_field_by_field_scrub_writes(
    path, model, error, request, response, ascii_raw, which
) -> None:
    scrubber = SCRUBBERS[which]
    rec = _record("/anthropic" + path, model, error, request, response)
    try:
        raws = {
            "request": json.dumps(request, ensure_ascii=ascii_raw).encode(),
            "response": None if response is None else json.dumps(response).encode(),
        }
    except (ValueError, UnicodeEncodeError):  # NaN is fine for json.dumps; a lone surrogate not
        return
    for record in (start_line(rec, 100), rec):
        expected = copy.deepcopy(record)
        try:
            scrub_record(expected, scrubber, raws)
            want = dumps_line(expected)
        except UnicodeEncodeError:  # a lone surrogate: no line either way
            return
        assert sealed_line(copy.deepcopy(record), scrubber, raws) == want


def test_a_clean_record_takes_the_one_scan_and_a_dirty_one_is_scrubbed() -> None:
    scrubber = Scrubber(literals=[LITERAL])
    clean = _record("/anthropic/v1/messages", "claude", None, {"text": "hello"}, None)
    line = sealed_line(clean, scrubber, {"request": b'{"text": "hello"}'})
    assert json.loads(line)["scrubbed"] == 0
    dirty = _record("/anthropic/v1/messages", LITERAL, None, {"text": "hello"}, None)
    back = json.loads(sealed_line(dirty, scrubber, {"request": b'{"text": "hello"}'}))
    assert back["model"] == "[REDACTED:secret]" and back["scrubbed"] == 1


def test_a_literal_the_encoder_escapes_is_found_where_the_walk_finds_it() -> None:
    # The raw text has a `\u` escape, so the body is walked, and the walk
    # finds the literal, which the encoded line shows only escaped.
    scrubber = Scrubber(literals=[QUOTED_LITERAL])
    body = {"text": "caf\u00e9 " + QUOTED_LITERAL}
    rec = _record("/anthropic/v1/messages", "m", None, body, None)
    raw = json.dumps(body, ensure_ascii=True).encode()
    back = json.loads(sealed_line(rec, scrubber, {"request": raw}))
    assert back["request"]["text"] == "caf\u00e9 [REDACTED:secret]" and back["scrubbed"] == 1
