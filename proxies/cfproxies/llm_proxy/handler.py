"""The proxy's one route, `/<provider>/<path>`: a call admitted (target,
route, token), its body bounded and read, the budget asked, the start line
written, the key swapped in, the upstream asked and its answer relayed; and
whatever happens, one record."""

from __future__ import annotations

import asyncio

from aiohttp import web

from cfproxies.llm_proxy.admission import Refused, admit
from cfproxies.llm_proxy.call import Call
from cfproxies.llm_proxy.headers import upstream_headers
from cfproxies.llm_proxy.providers import dialect_for
from cfproxies.llm_proxy.relay import relay
from cfproxies.llm_proxy.replies import (
    budget_reply,
    error_reply,
    gateway_reply,
    own_words,
    send_whole,
)
from cfproxies.llm_proxy.state import STATE, ProxyState
from cfproxies.llm_proxy.streams import parse_json_body
from cfproxies.record import estimate_split


async def proxy(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    call = Call(state, request, request.match_info["provider"])
    rec = call.record
    task = asyncio.current_task()
    state.inflight += 1
    if task is not None:
        state.tasks.add(task)
    try:
        return await _forward(request, call, state)
    except asyncio.CancelledError:
        # The gateway hung up (handler cancellation) or the proxy is stopping:
        # the upstream is closed by the cancellation itself; the record still
        # says what happened.
        if state.stopping:
            call.fail(rec["status"] or 503, "shutdown", "cf-llm-proxy stopped during the call")
        else:
            rec["client_disconnected"] = True
            if not rec["error"]:
                rec["error"] = "client disconnected"
                rec["error_kind"] = "client_disconnect"
            if not rec["status"]:
                rec["status"] = 499
        raise
    except ConnectionResetError:  # the gateway left while the answer was being sent
        rec["client_disconnected"] = True
        rec["error"] = rec["error"] or "client disconnected"
        rec["error_kind"] = rec.get("error_kind") or "client_disconnect"
        raise
    finally:
        state.inflight -= 1
        if task is not None:
            state.tasks.discard(task)
        call.finish()


async def _refuse(request: web.Request, call: Call, refused: Refused) -> web.Response:
    """Answer a call the proxy will not forward: the reason in its record,
    one line of JSON to the gateway."""
    call.fail(refused.status, refused.kind, refused.message)
    reply = error_reply(
        refused.status, refused.etype or refused.kind, own_words(refused.message), **refused.extra
    )
    return await send_whole(request, reply)


# Longer than any model a provider names (Bedrock's ARNs, OpenRouter's
# routes are a few hundred characters at most). A longer one is cut in the
# record: whole, it made the record one line of megabytes, more than the
# audit mirrors carry, and every span as large.
MAX_MODEL_CHARS = 512


def _model_from_path(path: str) -> str | None:
    """Gemini puts the model in the path: `.../models/{model}:generateContent`."""
    marker = "/models/"
    at = path.find(marker)
    if at < 0:
        return None
    return path[at + len(marker) :].split(":", 1)[0].split("/", 1)[0] or None


async def _read_bounded(request: web.Request, call: Call, state: ProxyState) -> bytes | Refused:
    """The request body, within `--max-request-bytes` and the proxy-wide
    bytes in flight; held by the call until its record is written."""
    cfg = state.config
    limit = cfg.max_request_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        return Refused(413, "request_too_large", f"request body over {limit} bytes")
    # A body of unknown size (chunked, or compressed: aiohttp inflates it)
    # is held at the largest size until it is read.
    plain = declared is not None and "content-encoding" not in request.headers
    if not call.hold(declared if plain and declared is not None else limit):
        return Refused(
            503,
            "overloaded",
            f"the proxy already holds {state.inflight_bytes} bytes of requests in flight "
            f"(limit {cfg.max_inflight_bytes}); retry shortly",
        )
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return Refused(413, "request_too_large", f"request body over {limit} bytes")
    if not plain:  # now it is known
        call.release_bytes()
        call.hold(len(body))
    return body


def _note_request(call: Call, request: web.Request, body: bytes, tail: str) -> None:
    """What the record says of the request: its size and model; and whether
    it asks for a stream, which the record does not say (the relay does)."""
    rec = call.record
    call.request_raw = body
    call.req_wire_bytes = request.content_length or len(body)  # before any decoding
    call.request_body = parse_json_body(body, request.headers.get("content-type", ""))
    if isinstance(call.request_body, dict):
        model = call.request_body.get("model")
        rec["model"] = model if isinstance(model, str) else None
        call.asked_stream = call.request_body.get("stream") is True
    if rec["model"] is None:
        rec["model"] = _model_from_path(tail)
    if rec["model"] is not None and len(rec["model"]) > MAX_MODEL_CHARS:
        # The agent's word: the record, the metrics and the span carry it
        # cut (the upstream gets the body as sent).
        rec["model"] = rec["model"][:MAX_MODEL_CHARS]
        rec["model_truncated"] = True
    if ":streamGenerateContent" in tail:
        call.asked_stream = True


async def _forward(request: web.Request, call: Call, state: ProxyState) -> web.StreamResponse:
    rec = call.record
    admitted = admit(state, request.method, call.raw_path, request.headers, call.query)
    if isinstance(admitted, Refused):
        return await _refuse(request, call, admitted)
    body = await _read_bounded(request, call, state)
    if isinstance(body, Refused):
        return await _refuse(request, call, body)
    provider, tail = admitted.provider, admitted.tail
    _note_request(call, request, body, tail)

    dialect = dialect_for(provider, tail)
    # The money budgets: checked and the call's estimate reserved in one
    # step, with no await between (see spend.py for the bound this gives).
    spend = state.spend
    prompt, output = estimate_split(call.request_body, len(body))
    call.rates = rates = spend.pricer.rates(admitted.name, rec["model"])
    estimate = spend.estimate(admitted.name, rec["model"], rates, prompt, output)
    refusal = spend.admit(rec["id"], estimate)
    if refusal is None:
        call.reserved = estimate
        rec["cost_est_usd"] = round(estimate, 9)
        refusal = state.budget.check()
    if refusal is not None:
        call.fail(429, "budget", refusal.message)
        rec["budget_limit"] = refusal.limit
        return await send_whole(request, budget_reply(refusal, dialect))

    qs = "&".join(part for _, part in admitted.query)
    origin, base_path = state.origins[admitted.name]
    target = (base_path + admitted.path or "/") + (f"?{qs}" if qs else "")
    headers = upstream_headers(request, provider, admitted.key)
    assert state.upstream is not None
    rec["req_bytes"] = call.req_wire_bytes
    call.write_start_line(prompt + output)  # the tokens it may cost (estimate_tokens)
    try:
        upstream = await state.upstream.request(origin, request.method, target, headers, body)
    except TimeoutError as exc:  # the connect and the read timeouts
        call.fail(504, "timeout", f"upstream timed out: {exc or type(exc).__name__}")
        return await send_whole(request, gateway_reply(504, "upstream timed out", provider))
    except (OSError, ValueError) as exc:  # unreachable, TLS, broke off; a header it refused
        call.fail(502, "connect", f"upstream unreachable: {type(exc).__name__}: {exc}")
        return await send_whole(request, gateway_reply(502, "upstream unreachable", provider))

    try:
        return await relay(request, call, state.config, provider, dialect, upstream)
    finally:
        upstream.release()  # closes the connection unless the body was read to the end
