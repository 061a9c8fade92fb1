"""A mitmproxy flow as one capture record (a plain dict, later encrypted).

Bodies are capped: a response body is teed while it streams (so SSE is not
held back), a request body is taken from what mitmproxy buffered. Text stays
text; anything else is base64. Nothing here writes anywhere.
"""

from __future__ import annotations

import base64
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from mitmproxy import http
from mitmproxy.net import encoding

SCHEMA_VERSION = 1
TEE_KEY = "cf.tee"
WS_KEY = "cf.ws"


class BodyTee:
    """`flow.response.stream`: passes chunks on untouched, keeps the first `cap` bytes."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.total = 0
        self.first_chunk_at: float | None = None

    def __call__(self, chunk: bytes) -> bytes:
        if chunk:
            if self.first_chunk_at is None:
                self.first_chunk_at = time.time()
            self.total += len(chunk)
            room = self.cap - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]
        return chunk


class WsLog:
    """WebSocket messages kept for the record, capped in total bytes."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self.messages: list[dict[str, Any]] = []
        self.dropped = 0

    def add(self, from_client: bool, is_text: bool, content: bytes, ts: float) -> None:
        room = self.cap - self.used
        if room <= 0:
            self.dropped += 1
            return
        kept = content[:room]
        self.used += len(kept)
        entry: dict[str, Any] = {"from_client": from_client, "ts": _iso(ts), "bytes": len(content)}
        entry.update(_body_fields(kept, len(content) > len(kept), text_hint=is_text))
        self.messages.append(entry)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start) * 1000, 3)


def _headers(headers: http.Headers) -> list[list[str]]:
    return [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers.fields]


def _body_fields(data: bytes | None, truncated: bool, text_hint: bool = False) -> dict[str, Any]:
    if data is None:
        return {"body": None}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        if truncated or text_hint:
            # A cap can cut a multi-byte character in half: keep the text.
            text = data.decode("utf-8", errors="replace")
            if text.count("\ufffd") <= 4:
                return {"body": text, "truncated": truncated}
        return {"body_b64": base64.b64encode(data).decode("ascii"), "truncated": truncated}
    return {"body": text, "truncated": truncated}


def _decoded(raw: bytes, content_encoding: str | None) -> tuple[bytes, bool]:
    """Undo gzip/br/deflate/zstd when the whole body is there; else raw bytes."""
    if not content_encoding or content_encoding.lower() == "identity":
        return raw, False
    try:
        out = encoding.decode(raw, content_encoding)
    except (ValueError, LookupError):
        return raw, False
    return (out if isinstance(out, bytes) else out.encode()), True


def _message_body(msg: http.Message, tee: BodyTee | None, cap: int) -> tuple[dict[str, Any], int]:
    """The body fields of a request or response and its size on the wire."""
    if tee is not None:
        raw, total = bytes(tee.kept), tee.total
    elif msg.raw_content is not None:
        raw, total = msg.raw_content[:cap], len(msg.raw_content)
    else:
        return {"body": None, "not_captured": True}, 0
    truncated = total > len(raw)
    fields: dict[str, Any]
    ce = msg.headers.get("content-encoding")
    if not truncated and ce:
        body, did = _decoded(raw, ce)
        fields = _body_fields(body[:cap], len(body) > cap)
        if did:
            fields["decoded_from"] = ce
    else:
        fields = _body_fields(raw, truncated)
        if ce:
            fields["content_encoding"] = ce
    fields["bytes"] = total
    return fields, total


def flow_record(flow: http.HTTPFlow, bot: str, key_id: str, body_cap: int) -> dict[str, Any]:
    """Everything an operator needs to read one flow back."""
    req = flow.request
    req_body, _ = _message_body(req, None, body_cap)
    record: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "id": flow.id or secrets.token_hex(8),
        "bot": bot,
        "k": key_id,
        "ts": _iso(req.timestamp_start),
        "kind": "websocket" if flow.websocket is not None else "http",
        "method": req.method,
        "url": req.pretty_url,
        "host": req.pretty_host,
        "port": req.port,
        "scheme": req.scheme,
        "http_version": req.http_version,
        "client": list(flow.client_conn.peername or ()) or None,
        "server": list(flow.server_conn.peername or ()) or None,
        "sni": flow.client_conn.sni,
        "tls": bool(flow.client_conn.tls_established),
        "request": {"headers": _headers(req.headers), **req_body},
        "response": None,
        "status": None,
        "error": flow.error.msg if flow.error else None,
    }
    resp = flow.response
    if resp is not None:
        tee = flow.metadata.get(TEE_KEY)
        resp_body, _ = _message_body(resp, tee, body_cap)
        record["status"] = resp.status_code
        record["response"] = {
            "reason": resp.reason,
            "http_version": resp.http_version,
            "headers": _headers(resp.headers),
            **resp_body,
        }
        end = resp.timestamp_end or (flow.error.timestamp if flow.error else None)
        record["ttfb_ms"] = _ms(req.timestamp_start, resp.timestamp_start)
        record["duration_ms"] = _ms(req.timestamp_start, end)
        record["streamed"] = bool(tee)
    else:
        record["duration_ms"] = _ms(
            req.timestamp_start, flow.error.timestamp if flow.error else None
        )
    if flow.metadata.get("cf.refused"):
        record["refused"] = True
    ws: WsLog | None = flow.metadata.get(WS_KEY)
    if flow.websocket is not None:
        record["websocket"] = {
            "messages": ws.messages if ws else [],
            "dropped": ws.dropped if ws else 0,
            "close_code": flow.websocket.close_code,
            "close_reason": flow.websocket.close_reason,
            "closed_by_client": flow.websocket.closed_by_client,
            "ended": _iso(getattr(flow.websocket, "timestamp_end", None)),
        }
    return record
