"""The upstream's answer, relayed to the gateway: a plain body of known size
whole, anything else chunk by chunk as it arrives; the key literals masked
in both; each chunk sent before the side parser reads it, so the record
costs a stream nothing."""

from __future__ import annotations

import time
import zlib
from typing import Any

import aiohttp
from aiohttp import web

from cfproxies.llm_proxy.call import Call
from cfproxies.llm_proxy.config import ProxyConfig
from cfproxies.llm_proxy.headers import response_headers
from cfproxies.llm_proxy.providers import Provider
from cfproxies.llm_proxy.replies import cut_connection, gateway_reply, send_whole
from cfproxies.llm_proxy.streams import (
    READERS,
    StreamParser,
    decode_body,
    decoder_for,
    parse_json_body,
)
from cfproxies.llm_proxy.upstream import Answer, UpstreamBrokeOff

BUFFERED_MAX = 8 * 1024 * 1024  # larger plain bodies are relayed chunk by chunk, not held


async def relay(
    request: web.Request,
    call: Call,
    cfg: ProxyConfig,
    provider: Provider,
    dialect: str,
    upstream: Answer,
) -> web.StreamResponse:
    rec = call.record
    t_headers = time.perf_counter()
    rec["ttfb_ms"] = call.ms_since_start(t_headers)
    rec["status"] = upstream.status
    ctype = upstream.headers.get("content-type", "")
    encoding = upstream.headers.get("content-encoding")
    if encoding:
        rec["resp_content_encoding"] = encoding
    rid = upstream.headers.get("request-id") or upstream.headers.get("x-request-id")
    if rid:
        rec["upstream_request_id"] = rid
    if "retry-after" in upstream.headers:
        rec["retry_after"] = upstream.headers["retry-after"]
    if upstream.status >= 400:
        rec["error_kind"] = "upstream_http"
    is_sse = ctype.startswith("text/event-stream")
    reader = READERS[dialect](cfg.body_cap)
    call.reassembly = reader
    keys = call.state.keys
    # Keys are looked for in what the gateway reads: a compressed body is
    # decoded for it (and one the proxy cannot decode is not relayed).
    decoding = keys.active and bool(encoding) and (encoding or "").strip().lower() != "identity"
    if decoding and decoder_for(encoding) is None:
        call.fail(502, "upstream_encoding", f"upstream answered in {encoding!r}, never offered")
        return await send_whole(
            request,
            gateway_reply(502, "upstream answered in an encoding it was not offered", provider),
        )
    out_headers = response_headers(upstream, keys, decoding)

    if (
        not is_sse
        and upstream.content_length is not None
        and upstream.content_length <= BUFFERED_MAX
    ):
        rec["stream"] = False
        try:
            raw = await upstream.read()
        except TimeoutError:
            call.fail(504, "timeout", "upstream timed out while sending its body")
            return await send_whole(request, gateway_reply(504, "upstream timed out", provider))
        except UpstreamBrokeOff as exc:
            call.fail(502, "upstream_disconnect", f"upstream broke off: {exc}")
            return await send_whole(request, gateway_reply(502, "upstream broke off", provider))
        call.response_raw = raw
        rec["resp_bytes"] = len(raw)
        decoded = decode_body(raw, encoding)
        call.response_text = decoded
        sent = keys.strip(decoded if decoding else raw)
        response = web.Response(status=upstream.status, headers=out_headers, body=sent)
        await send_whole(request, response)
        call.response_parsed = parse_json_body(decoded, ctype)
        reader.body(call.response_parsed)
        note_upstream_error(rec, upstream.status, reader)
        return response

    # Streamed: SSE, or a stream the request asked for (Gemini's JSON array)
    # that came as a success; an error answered without a length is not one.
    rec["stream"] = is_sse or (call.asked_stream and upstream.status < 400)
    # Decoded once, here, when the gateway gets it decoded; else the parser decodes.
    inflate = decoder_for(encoding) if decoding else None
    parser = StreamParser(reader, sse=is_sse, encoding=None if inflate else encoding)
    out = web.StreamResponse(status=upstream.status, headers=out_headers)
    if is_sse:
        out.headers["X-Accel-Buffering"] = "no"
    if upstream.content_length is not None and not decoding:
        out.content_length = upstream.content_length  # masking keeps the length
    await out.prepare(request)
    size = 0
    chunks = 0
    last = t_headers
    stripper = keys.stream()
    try:
        async for chunk in upstream.iter_chunks():
            # the chunk goes first; the side parser after
            data = inflate.decompress(chunk) if inflate else chunk
            await out.write(stripper.feed(data))
            now = time.perf_counter()
            gap = now - last
            last = now
            if gap > call.max_gap:
                call.max_gap = gap
            size += len(chunk)
            chunks += 1
            parser.feed(data)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        rec["client_disconnected"] = True
        call.fail(upstream.status, "client_disconnect", "client disconnected mid-stream")
        upstream.close()
        return out
    except TimeoutError:
        call.fail(upstream.status, "timeout", "upstream went silent mid-stream (read timeout)")
        cut_connection(request)
        return out
    except UpstreamBrokeOff as exc:
        call.fail(upstream.status, "upstream_disconnect", f"upstream broke off mid-stream: {exc}")
        cut_connection(request)
        return out
    except zlib.error as exc:  # only when decoding for the key check
        call.fail(
            upstream.status, "upstream_encoding", f"upstream sent a corrupt {encoding}: {exc}"
        )
        cut_connection(request)
        return out
    finally:
        rec["resp_bytes"] = size
        rec["chunks"] = chunks
        rec["max_chunk_gap_ms"] = round(call.max_gap * 1000.0, 3)
        parser.close()
        kept = None if rec["stream"] else parser.kept_body()
        if kept is not None:
            call.response_raw = call.response_text = kept
    await out.write(stripper.feed(inflate.flush()) if inflate else b"")
    await out.write(stripper.flush())
    await out.write_eof()
    note_upstream_error(rec, upstream.status, reader)
    return out


def note_upstream_error(rec: dict[str, Any], status: int, reader: Any) -> None:
    """An error status in the record's `error`, with the provider's own words."""
    if status >= 400 and not rec["error"]:
        rec["error"] = f"upstream answered {status}" + (f": {reader.error}" if reader.error else "")
        rec["error_kind"] = "upstream_http"
