"""Coverage-guided fuzz targets (atheris/libFuzzer) for the parsers that read
bytes the agent, or an upstream, controls. Each target takes one input and
raises only on a bug: an exception the parser does not promise, or a
disagreement with a reference. Run through `fuzz/run.py` (`make fuzz`).

The same properties, bounded and deterministic, are in tests/fuzz and run in
`make test`; a crash found here becomes a regression test there.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import tarfile
import tempfile
from collections.abc import Callable

import atheris

with atheris.instrument_imports():
    from cfproxies.egress.patterns import Allowlist, PatternError, ip_literal, parse_pattern
    from cfproxies.llm_proxy.streams import READERS, StreamParser

    from cftui import age as age_format
    from cftui.audit.traffic.display import format_call
    from cftui.audit.traffic.filter import TrafficFilter
    from cftui.audit.traffic.log import TrafficLog
    from cftui.inert import inert
    from cftui.proposals.egress_requests import parse_ledger
    from cftui.snapshots.tarheader import FastTarInfo

DIALECTS = sorted(READERS)


def streams(data: bytes) -> None:
    """Raw response bytes, SSE or not, compressed or not, fed in chunks of a
    size the input picks; and the same bytes as one JSON payload to each
    reader. Byte 0: dialect, SSE, encoding; byte 1: chunk size."""
    if len(data) < 2:
        return
    dialect = DIALECTS[data[0] % len(DIALECTS)]
    sse = bool(data[0] & 4)
    encoding = [None, "gzip", "deflate"][(data[0] >> 3) % 3]
    step = data[1] + 1
    body = data[2:]
    parser = StreamParser(READERS[dialect](256), sse=sse, encoding=encoding)
    for at in range(0, len(body), step):
        parser.feed(body[at : at + step])
    _reassembled(parser.close())
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return
    for name in DIALECTS:
        reader = READERS[name](256)
        reader.event(None, payload)
        reader.body(payload)
        _reassembled(reader)


def _reassembled(reader) -> None:
    out = reader.as_response()
    assert isinstance(out["text"], str) and reader.text_len <= reader.cap
    _ = reader.usage_status


_TRAFFIC = os.path.join(tempfile.mkdtemp(prefix="cftui-fuzz-"), "traffic.jsonl")


def traffic(data: bytes) -> None:
    """A whole traffic.jsonl: every line read, shown, filtered and counted."""
    with open(_TRAFFIC, "wb") as f:
        f.write(data)
    with TrafficLog(_TRAFFIC) as log:
        log.open()
        log.scan()
        for i in range(len(log)):
            rec = log.record(i)
            if rec is not None:
                line = inert(format_call(rec))
                assert "\n" not in line and line.isprintable()
        for spec in ("", "status:err", "provider:openai model:gpt x"):
            log.filter(TrafficFilter.parse(spec))


def _tar_read(cls: type[tarfile.TarInfo], block: bytes) -> object:
    try:
        got = cls.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError as exc:
        return type(exc)
    keys = ("name", "mode", "uid", "gid", "size", "mtime", "chksum", "type", "linkname")
    return tuple(getattr(got, k) for k in (*keys, "uname", "gname", "devmajor", "devminor"))


def tarheader(data: bytes) -> None:
    """One 512-byte header: the fast path must read it as tarfile does."""
    block = data[:512].ljust(512, b"\0")
    assert _tar_read(FastTarInfo, block) == _tar_read(tarfile.TarInfo, block)


def patterns(data: bytes) -> None:
    """An allowlist pattern and a host: parse or PatternError; a host the
    resolver reads as an IPv4 address is that address, never a name."""
    fdp = atheris.FuzzedDataProvider(data)
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 64))
    host = fdp.ConsumeUnicodeNoSurrogates(64)
    try:
        allow = Allowlist.parse([parse_pattern(text).text])
    except PatternError:
        allow = Allowlist.parse(["*.example.com", "example.com"])
    allow.check(host, 443)
    try:
        packed = socket.inet_aton(host)
    except (OSError, ValueError):
        return
    if host.isascii() and not any(c.isspace() for c in host):
        address = socket.inet_ntoa(packed)
        assert ip_literal(host) == address, (host, ip_literal(host), address)
        assert not Allowlist.parse(["*.example.com", "x"]).check(host, 80).allowed


_IDENTITY = age_format.generate_identity()


def age(data: bytes) -> None:
    """Any bytes as an age file: AgeError, or (never by chance) a plaintext."""
    with contextlib.suppress(age_format.AgeError):
        age_format.decrypt_bytes(data, _IDENTITY)
    with contextlib.suppress(age_format.AgeError):
        age_format.bech32_decode(data.decode("ascii", "replace"), "age")


def egress_ledger(data: bytes) -> None:
    """The egress proxy's ledger of refused requests (hosts, methods and
    paths are the agent's): requests or a one-line note, never an exception."""
    ledger = parse_ledger("bot", data)
    assert len(ledger.requests) + ledger.skipped >= 0
    note = ledger.note
    assert note is None or ("\n" not in inert(note) and len(note) < 4096)
    for r in ledger.requests:
        assert (r.port is None or 0 <= r.port <= 65535) and r.count >= 1
        assert r.last_at >= r.first_at
        inert(r.key), inert(r.attempt)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "streams": streams,
    "traffic": traffic,
    "tarheader": tarheader,
    "patterns": patterns,
    "age": age,
    "egress_ledger": egress_ledger,
}


def seeds(name: str) -> list[bytes]:
    """A few valid inputs to start from (libFuzzer mutates them)."""
    if name == "streams":
        events = [
            {"type": "message_start", "message": {"id": "m", "model": "c", "usage": {}}},
            {"type": "content_block_start", "content_block": {"type": "tool_use", "name": "t"}},
            {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "hi"}},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end"},
                "usage": {"output_tokens": 1},
            },
            {"choices": [{"delta": {"content": "a", "tool_calls": [{"function": {"name": "f"}}]}}]},
            {"type": "response.completed", "response": {"usage": {"input_tokens": 1}}},
            {"candidates": [{"content": {"parts": [{"text": "g"}]}}], "usageMetadata": {}},
        ]
        sse = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
        out = [bytes([4 | d, 9]) + sse for d in range(3)]
        return out + [bytes([d, 255]) + json.dumps(e).encode() for d in range(3) for e in events]
    if name == "traffic":
        return [
            b'{"v":1,"ts":"2026-01-01T00:00:00.000Z","model":"m","status":200,'
            b'"tokens_in":1,"tokens_out":2,"request":{"a":[1]}}\n{"v":1}\n{torn'
        ]
    if name == "tarheader":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            tar.addfile(tarfile.TarInfo("state/memory/a.md"))
        return [buf.getvalue()[:512]]
    if name == "patterns":
        return [b"\x10api.example.com:443127.1", b"\x0c*.github.com0x7f.0.0.1"]
    if name == "egress_ledger":
        entry = {
            "key": "api.example.com:443 GET /v1/",
            "host": "api.example.com",
            "port": 443,
            "connect": True,
            "count": 2,
            "first": "2026-12-02T05:00:00.123Z",
            "last": "2026-12-02T05:01:00.456Z",
            "method": "GET",
            "path": "/v1/x",
            "rule": "api.example.com GET /ok/",
            "suggest": "api.example.com GET /v1/",
        }
        return [json.dumps({"v": 1, "bot": "bot", "dropped": 0, "requests": [entry]}).encode()]
    recipient = age_format.parse_recipient(age_format.recipient_of(_IDENTITY))
    with tempfile.TemporaryFile() as out:
        age_format.encrypt(io.BytesIO(b"seed"), out.fileno(), recipient)
        out.seek(0)
        return [out.read()]
