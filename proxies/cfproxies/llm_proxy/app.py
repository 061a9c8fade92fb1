"""The aiohttp application: `/<provider>/<path>` forwarded upstream, chunk by
chunk, with the key swapped in, and one record per call.

Why it is shaped this way (see shared/reference/proxy.md):
- the upstream client (`upstream.py`) never decompresses: bytes go to the
  gateway exactly as the provider sent them, and only the side parser
  decodes; the upstream is offered only encodings that parser can decode;
- every response is sent before its record is built, so scrubbing and the
  log write cost the gateway nothing;
- the server runs with `handler_cancellation=True`, so a gateway that hangs
  up cancels the handler wherever it waits (before the first byte too) and
  the upstream call is closed at once rather than left generating and billing.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import ssl
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from cfproxies.jsoncodec import loads
from cfproxies.llm_proxy.budget import Budget, Refusal
from cfproxies.llm_proxy.config import ProxyConfig
from cfproxies.llm_proxy.providers import Provider, dialect_for, upstream_path
from cfproxies.llm_proxy.reflect import KeyStripper
from cfproxies.llm_proxy.routes import Allowed, allowed_for, decoded, route_path, split_target
from cfproxies.llm_proxy.sealing import sealed_line
from cfproxies.llm_proxy.streams import READERS, StreamParser, decode_body, decoder_for
from cfproxies.llm_proxy.trafficlog import TrafficLog
from cfproxies.llm_proxy.upstream import Answer, Origin, UpstreamBrokeOff, UpstreamPool
from cfproxies.record import body_for_record, estimate_tokens, new_record, start_line
from cfproxies.scrub import ReloadingScrubber

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key"})
# aiohttp's server hands us request bodies already decoded, so the request's
# Content-Encoding no longer describes them and is not forwarded.
REQUEST_DROP = HOP_BY_HOP | {
    "host",
    "content-length",
    "content-encoding",
    "accept-encoding",
    "expect",
}
REQUEST_DROP_KEYED = REQUEST_DROP | CREDENTIAL_HEADERS  # with --token: the real key goes in
RESPONSE_DROP = HOP_BY_HOP | {"content-length"}
DECODABLE = ("gzip", "x-gzip", "deflate", "identity")
BUFFERED_MAX = 8 * 1024 * 1024  # larger plain bodies are relayed chunk by chunk, not held
OFFLOAD_BYTES = 64 * 1024  # records with more body than this are sealed in the writer thread


@dataclass
class ProxyState:
    """Everything a handler needs, built once per app."""

    config: ProxyConfig
    log: TrafficLog
    scrubber: ReloadingScrubber
    budget: Budget
    keys: KeyStripper
    allowed: dict[str, Allowed]
    upstream: UpstreamPool | None = None
    # Each provider's origin and base path, parsed once.
    origins: dict[str, tuple[Origin, str]] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    inflight: int = 0
    inflight_bytes: int = 0  # request bytes held by calls not yet written (see Call.hold)
    tasks: set[asyncio.Task] = field(default_factory=set)
    stopping: bool = False
    writer: ThreadPoolExecutor | None = None  # seals large records off the event loop


STATE = web.AppKey("cf_llm_proxy_state", ProxyState)


def make_app(config: ProxyConfig) -> web.Application:
    """The proxy as an aiohttp app; run it with `handler_cancellation=True`."""
    app = web.Application(client_max_size=config.max_request_bytes)
    literals = [*config.keys.values(), *([config.token] if config.token else [])]
    log = TrafficLog(config.traffic_log)
    budget = Budget(config.daily_token_budget, config.rpm)
    budget.seed_from_log(config.traffic_log, config.bot)
    scrubber = ReloadingScrubber(config.scrub_rules, literals, _report_rules_problem)
    allowed = {name: allowed_for(p, config.extra_routes) for name, p in config.providers.items()}
    state = ProxyState(config, log, scrubber, budget, KeyStripper(literals), allowed)
    app[STATE] = state
    app.on_startup.append(_open_session)
    app.on_shutdown.append(_drain)
    app.on_cleanup.append(_close)
    app.router.add_get("/health", health)
    app.router.add_route("*", "/{provider}/{tail:.*}", proxy)
    return app


def _report_rules_problem(problem: str) -> None:
    print(f"cf-llm-proxy: scrub rules: {problem}", file=sys.stderr, flush=True)


async def _open_session(app: web.Application) -> None:
    state = app[STATE]
    cfg = state.config
    state.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cf-record")
    # The TLS context loads the system's CA store (~25 ms): here at start,
    # not on the event loop under the first calls.
    https = any(p.base_url.startswith("https:") for p in cfg.providers.values())
    state.upstream = UpstreamPool(
        connect_timeout=cfg.connect_timeout,
        read_timeout=cfg.read_timeout,
        ssl_context=ssl.create_default_context() if https else None,
    )
    for name, provider in cfg.providers.items():
        base = URL(provider.base_url, encoded=True)
        state.origins[name] = (Origin.of(base), base.raw_path.rstrip("/"))


SHUTDOWN_GRACE_S = 3.0


async def _drain(app: web.Application) -> None:
    """On SIGTERM: let calls in flight finish for a moment, then cancel the
    rest so that each still gets its record before Docker's kill (10 s)."""
    state = app[STATE]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SHUTDOWN_GRACE_S
    while state.tasks and loop.time() < deadline:
        await asyncio.sleep(0.05)
    state.stopping = True
    left = list(state.tasks)
    for task in left:
        task.cancel()
    if left:
        await asyncio.wait(left, timeout=1.0)


async def _close(app: web.Application) -> None:
    state = app[STATE]
    if state.upstream is not None:
        state.upstream.close()
    if state.writer is not None:  # every record handed over is written before the log closes
        await asyncio.get_running_loop().run_in_executor(None, state.writer.shutdown, True)
        state.writer = None
    state.log.close()


def _json_response(
    status: int, payload: dict[str, Any], headers: dict | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        content_type="application/json",
        headers=headers,
    )


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    scrubber = state.scrubber.get()
    cfg = state.config
    return _json_response(
        200,
        {
            "ok": True,
            "service": "cf-llm-proxy",
            "bot": cfg.bot,
            "log": state.log.health(),
            "log_writable": state.log.ok,
            "last_write_error": state.log.last_error,
            "scrub": {
                "user_rules": len(scrubber.user_rules),
                "errors": scrubber.errors,
                "timeouts": scrubber.timeouts,
            },
            "budget": state.budget.snapshot(),
            "token_required": cfg.token is not None,
            # Not the upstream URLs: the gateway may read this, and a URL may
            # name an internal host or carry a credential.
            "providers": {
                name: {"key_configured": p.key_env in cfg.keys}
                for name, p in sorted(cfg.providers.items())
            },
            "inflight": state.inflight,
            "inflight_bytes": state.inflight_bytes,
            "uptime_s": round(time.time() - state.started, 1),
        },
    )


# --- request helpers ----------------------------------------------------------------


def _split_query(query: str) -> list[tuple[str, str]]:
    out = []
    for part in query.split("&") if query else []:
        name, _, _ = part.partition("=")
        out.append((name, part))
    return out


def _presented_credentials(request: web.Request, query: list[tuple[str, str]]) -> list[str]:
    found = []
    for header in ("x-api-key", "x-goog-api-key"):
        if value := request.headers.get(header):
            found.append(value.strip())
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        found.append(value.strip())
    for name, part in query:
        if name == "key":
            found.append(URL(f"?{part}", encoded=True).query.get("key", ""))
    return found


def _token_ok(presented: list[str], token: str) -> bool:
    want = token.encode()
    return any(hmac.compare_digest(p.encode(), want) for p in presented if p)


def _accept_encoding(value: str | None) -> str | None:
    """The client's Accept-Encoding, minus what the side parser cannot decode."""
    if value is None:
        return None
    kept = [
        item.strip() for item in value.split(",") if item.split(";")[0].strip().lower() in DECODABLE
    ]
    return ", ".join(kept) if kept else "identity"


def _connection_named(headers: Any) -> frozenset[str]:
    """The headers a `Connection` header names, hop-by-hop like it."""
    value = headers.get("connection")
    if not value:
        return frozenset()
    return frozenset(t.strip().lower() for t in value.split(",") if t.strip())


def _upstream_headers(
    request: web.Request, provider: Provider, key: str | None
) -> list[tuple[str, str]]:
    drop = REQUEST_DROP if key is None else REQUEST_DROP_KEYED
    if "connection" in request.headers:
        drop = drop | _connection_named(request.headers)
    # repeated headers stay repeated
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in drop]
    ae = _accept_encoding(request.headers.get("accept-encoding"))
    if ae is not None:
        headers.append(("Accept-Encoding", ae))
    if key is not None:
        if provider.auth == "x-api-key":
            headers.append(("x-api-key", key))
        elif provider.auth == "x-goog-api-key":
            headers.append(("x-goog-api-key", key))
        else:
            headers.append(("Authorization", f"Bearer {key}"))
    return headers


def _response_headers(upstream: Answer, keys: KeyStripper, decoding: bool) -> CIMultiDict:
    drop = RESPONSE_DROP
    if "connection" in upstream.headers:
        drop = drop | _connection_named(upstream.headers)
    if decoding:  # the proxy decodes the body to look for keys: it is sent as is
        drop = drop | {"content-encoding"}
    # several Set-Cookie stay several
    kept = [(k, v) for k, v in upstream.headers.items() if k.lower() not in drop]
    return CIMultiDict(keys.strip_headers(kept))


def _parse_json(raw: bytes, content_type: str) -> Any:
    if not raw or ("json" not in content_type and raw[:1] not in (b"{", b"[")):
        return None
    try:
        return loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _model_from_path(path: str) -> str | None:
    """Gemini puts the model in the path: `.../models/{model}:generateContent`."""
    marker = "/models/"
    at = path.find(marker)
    if at < 0:
        return None
    return path[at + len(marker) :].split(":", 1)[0].split("/", 1)[0] or None


# --- the call ---------------------------------------------------------------------


class Call:
    """One forwarded call and its record, written exactly once."""

    def __init__(self, state: ProxyState, request: web.Request, provider_name: str) -> None:
        self.state = state
        self.t0 = time.perf_counter()
        self.held_bytes = 0
        raw_path, _, query = request.raw_path.partition("?")
        self.query = _split_query(query)
        shown = "&".join(
            f"key={'[REDACTED]'}" if name == "key" else part for name, part in self.query
        )
        self.record = new_record(
            bot=state.config.bot,
            provider=provider_name,
            method=request.method,
            path=raw_path + (f"?{shown}" if shown else ""),
            epoch=time.time(),
        )
        self.raw_path = raw_path
        self.request_body: Any = None
        self.request_raw = b""
        self.req_wire_bytes = 0
        self.response_raw = b""
        self.response_decoded = False
        self.response_parsed: Any = None
        self.reassembly: Any = None
        self.written = False
        self.t_first_chunk: float | None = None
        self.max_gap = 0.0

    def hold(self, size: int) -> bool:
        """Reserve `size` request bytes in the proxy-wide budget (released
        once the record is written): False if that would go over it."""
        state = self.state
        if state.inflight_bytes + size > state.config.max_inflight_bytes:
            return False
        state.inflight_bytes += size
        self.held_bytes += size
        return True

    def release_bytes(self) -> None:
        held, self.held_bytes = self.held_bytes, 0
        self.state.inflight_bytes -= held

    def started(self, tokens_est: int) -> None:
        """The start line: written before the upstream is asked, so that a
        proxy that dies mid-call leaves the call in the log (and charged)."""
        line = start_line(self.record, tokens_est)
        self.state.log.write_line(sealed_line(line, self.state.scrubber.get(), {}))

    def ms(self, t: float) -> float:
        return round((t - self.t0) * 1000.0, 3)

    def fail(self, status: int, kind: str, message: str) -> None:
        self.record["status"] = status
        self.record["error_kind"] = kind
        self.record["error"] = message

    def finish(self) -> None:
        """Complete the record and have it written; never raises, never runs
        twice. Scrubbing and encoding a large body take milliseconds, so
        those go to the writer thread rather than hold up other streams."""
        if self.written:
            return
        self.written = True
        rec = self.record
        rec["duration_ms"] = self.ms(time.perf_counter())
        rec["req_bytes"] = self.req_wire_bytes or len(self.request_raw)
        r = self.reassembly
        if r is not None:
            if r.usage is not None:
                r.usage.apply(rec)
            rec["usage_status"] = r.usage_status
            rec["stop_reason"] = r.stop_reason
            rec["model_resp"] = r.model
            rec["response_id"] = r.response_id
            if r.first_content_at is not None:
                rec["ttft_ms"] = self.ms(r.first_content_at)
            if r.error and not rec["error"]:
                rec["error"] = r.error
                rec["error_kind"] = "stream_error_event" if rec["stream"] else "upstream_http"
        self.state.budget.add_tokens(int(rec["tokens_in"]) + int(rec["tokens_out"]))
        size = len(self.request_raw) + len(self.response_raw) + (r.text_len if r else 0)
        if size < OFFLOAD_BYTES or self.state.writer is None:
            self._seal()
        else:
            # The body stays held until written: a slow writer slows new calls,
            # it does not pile up bodies in memory.
            loop = asyncio.get_running_loop()
            job = self.state.writer.submit(self._seal_only)
            job.add_done_callback(lambda _job: loop.call_soon_threadsafe(self.release_bytes))

    def _seal(self) -> None:
        try:
            self._seal_only()
        finally:
            self.release_bytes()

    def _seal_only(self) -> None:
        """Bodies in, secrets out, one line appended."""
        rec = self.record
        cap = self.state.config.body_cap
        truncated = False
        rec["request"], cut = body_for_record(self.request_raw, cap, self.request_body)
        truncated |= cut
        r = self.reassembly
        if r is not None and rec["stream"]:
            rec["response"] = r.as_response()
            truncated |= r.truncated
        response_text: bytes | None = None  # the JSON text rec["response"] came from
        if not rec["stream"] and self.response_raw and rec["response"] is None:
            decoded = self.response_raw
            if not self.response_decoded:
                decoded = decode_body(decoded, rec.get("resp_content_encoding"))
            rec["response"], cut = body_for_record(decoded, cap, self.response_parsed)
            response_text = decoded
            truncated |= cut
        rec["truncated"] = truncated
        raws = {"request": self.request_raw, "response": response_text}
        self.state.log.write_line(sealed_line(rec, self.state.scrubber.get(), raws))


async def _send(request: web.Request, response: web.Response) -> web.Response:
    """Send a complete response now, so the record is built after the client has it."""
    await response.prepare(request)
    await response.write_eof()
    return response


def _refusal_response(refusal: Refusal) -> web.Response:
    now = time.time()
    retry = refusal.retry_after(now)
    return _json_response(
        429,
        {
            "error": {
                "type": "rate_limit_error",
                "limit": refusal.limit,
                "message": refusal.message,
                "resets_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(refusal.resets_at)),
                "retry_after_s": retry,
            }
        },
        headers={"Retry-After": str(retry)},
    )


async def proxy(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    cfg = state.config
    name = request.match_info["provider"]
    call = Call(state, request, name)
    rec = call.record
    task = asyncio.current_task()
    state.inflight += 1
    if task is not None:
        state.tasks.add(task)
    try:
        return await _forward(request, call, state, cfg)
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


async def _refuse(
    request: web.Request,
    call: Call,
    status: int,
    kind: str,
    message: str,
    etype: str | None = None,
    **extra: Any,
) -> web.Response:
    """Answer a call the proxy will not forward: the reason in its record
    (`kind`), one line of JSON to the gateway (of type `etype`, else `kind`)."""
    call.fail(status, kind, message)
    error = {"type": etype or kind, "message": f"cf-llm-proxy: {message}", **extra}
    return await _send(request, _json_response(status, {"error": error}))


async def _forward(
    request: web.Request, call: Call, state: ProxyState, cfg: ProxyConfig
) -> web.StreamResponse:
    rec = call.record
    target = split_target(call.raw_path)
    if isinstance(target, str):
        return await _refuse(request, call, 400, "bad_request_target", target)
    name, tail = target
    provider = cfg.providers.get(name)
    if provider is None:
        known = ", ".join(sorted(cfg.providers))
        return await _refuse(
            request,
            call,
            404,
            "unknown_provider",
            f"unknown provider {name!r}; known: {known}",
            "not_found",
        )
    path = upstream_path(provider, tail)
    if not state.allowed[name].permits(request.method, decoded(route_path(provider, path))):
        return await _refuse(
            request,
            call,
            403,
            "route_not_allowed",
            f"{request.method} on this path is not part of {name}'s inference API, which is "
            "all the proxy forwards (the operator may allow more with --allow-route)",
        )

    key: str | None = None
    query = call.query
    if cfg.token is not None:  # before the body is read: a stranger's body is never held
        if not _token_ok(_presented_credentials(request, query), cfg.token):
            return await _refuse(
                request,
                call,
                401,
                "auth",
                "present the bot's proxy token as the API key",
                "authentication_error",
            )
        key = cfg.keys.get(provider.key_env)
        if not key:
            return await _refuse(
                request,
                call,
                503,
                "no_key",
                f"{provider.key_env} is not set in providers.env",
                "provider_key_missing",
                variable=provider.key_env,
            )
        query = [(n, part) for n, part in query if n != "key"]

    limit = cfg.max_request_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        return await _refuse(
            request, call, 413, "request_too_large", f"request body over {limit} bytes"
        )
    # A body of unknown size (chunked, or compressed: aiohttp inflates it)
    # is held at the largest size until it is read.
    plain = declared is not None and "content-encoding" not in request.headers
    if not call.hold(declared if plain and declared is not None else limit):
        return await _refuse(
            request,
            call,
            503,
            "overloaded",
            f"the proxy already holds {state.inflight_bytes} bytes of requests in flight "
            f"(limit {cfg.max_inflight_bytes}); retry shortly",
        )
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return await _refuse(
            request, call, 413, "request_too_large", f"request body over {limit} bytes"
        )
    if not plain:  # now it is known
        call.release_bytes()
        call.hold(len(body))
    call.request_raw = body
    call.req_wire_bytes = request.content_length or len(body)  # before any decoding
    call.request_body = _parse_json(body, request.headers.get("content-type", ""))
    if isinstance(call.request_body, dict):
        model = call.request_body.get("model")
        rec["model"] = model if isinstance(model, str) else None
        rec["stream"] = call.request_body.get("stream") is True
    if rec["model"] is None:
        rec["model"] = _model_from_path(tail)
    if ":streamGenerateContent" in tail:
        rec["stream"] = True

    refusal = state.budget.check()
    if refusal is not None:
        call.fail(429, "budget", refusal.message)
        rec["budget_limit"] = refusal.limit
        return await _send(request, _refusal_response(refusal))

    qs = "&".join(part for _, part in query)
    origin, base_path = state.origins[name]
    upstream_target = (base_path + path or "/") + (f"?{qs}" if qs else "")
    headers = _upstream_headers(request, provider, key)
    dialect = dialect_for(provider, tail)
    assert state.upstream is not None
    rec["req_bytes"] = call.req_wire_bytes
    call.started(estimate_tokens(call.request_body, len(body)))
    try:
        upstream = await state.upstream.request(
            origin, request.method, upstream_target, headers, body
        )
    except TimeoutError as exc:  # the connect and the read timeouts
        call.fail(504, "timeout", f"upstream timed out: {exc or type(exc).__name__}")
        return await _send(request, _gateway_error(504, "upstream timed out", provider))
    except (OSError, ValueError) as exc:  # unreachable, TLS, broke off; a header it refused
        call.fail(502, "connect", f"upstream unreachable: {type(exc).__name__}: {exc}")
        return await _send(request, _gateway_error(502, "upstream unreachable", provider))

    try:
        return await _relay(request, call, cfg, provider, dialect, upstream)
    finally:
        upstream.release()  # closes the connection unless the body was read to the end


async def _relay(
    request: web.Request,
    call: Call,
    cfg: ProxyConfig,
    provider: Provider,
    dialect: str,
    upstream: Answer,
) -> web.StreamResponse:
    rec = call.record
    t_headers = time.perf_counter()
    rec["ttfb_ms"] = call.ms(t_headers)
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
    decoding = keys.active and bool(encoding) and encoding.strip().lower() != "identity"
    if decoding and decoder_for(encoding) is None:
        call.fail(502, "upstream_encoding", f"upstream answered in {encoding!r}, never offered")
        return await _send(
            request,
            _gateway_error(502, "upstream answered in an encoding it was not offered", provider),
        )
    out_headers = _response_headers(upstream, keys, decoding)

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
            return await _send(request, _gateway_error(504, "upstream timed out", provider))
        except UpstreamBrokeOff as exc:
            call.fail(502, "upstream_disconnect", f"upstream broke off: {exc}")
            return await _send(request, _gateway_error(502, "upstream broke off", provider))
        call.response_raw = raw
        rec["resp_bytes"] = len(raw)
        decoded = decode_body(raw, encoding)
        sent = keys.strip(decoded if decoding else raw)
        response = web.Response(status=upstream.status, headers=out_headers, body=sent)
        await _send(request, response)
        call.response_parsed = _parse_json(decoded, ctype)
        reader.body(call.response_parsed)
        _note_http_error(rec, upstream.status, reader)
        return response

    rec["stream"] = rec["stream"] or is_sse
    parser = StreamParser(reader, sse=is_sse, encoding=encoding)
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
    inflate = decoder_for(encoding) if decoding else None
    try:
        async for chunk in upstream.iter_chunks():
            # the chunk goes first; the side parser after
            await out.write(stripper.feed(inflate.decompress(chunk) if inflate else chunk))
            now = time.perf_counter()
            gap = now - last
            last = now
            if gap > call.max_gap:
                call.max_gap = gap
            size += len(chunk)
            chunks += 1
            parser.feed(chunk)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        rec["client_disconnected"] = True
        call.fail(upstream.status, "client_disconnect", "client disconnected mid-stream")
        upstream.close()
        return out
    except TimeoutError:
        call.fail(upstream.status, "timeout", "upstream went silent mid-stream (read timeout)")
        _abort(request)
        return out
    except UpstreamBrokeOff as exc:
        call.fail(upstream.status, "upstream_disconnect", f"upstream broke off mid-stream: {exc}")
        _abort(request)
        return out
    except zlib.error as exc:  # only when decoding for the key check
        call.fail(
            upstream.status, "upstream_encoding", f"upstream sent a corrupt {encoding}: {exc}"
        )
        _abort(request)
        return out
    finally:
        rec["resp_bytes"] = size
        rec["chunks"] = chunks
        rec["max_chunk_gap_ms"] = round(call.max_gap * 1000.0, 3)
        parser.close()
        if not rec["stream"] and not parser.overflow:
            call.response_raw, call.response_decoded = bytes(parser._buf), True
    await out.write(stripper.feed(inflate.flush()) if inflate else b"")
    await out.write(stripper.flush())
    await out.write_eof()
    _note_http_error(rec, upstream.status, reader)
    return out


def _note_http_error(rec: dict[str, Any], status: int, reader: Any) -> None:
    if status >= 400 and not rec["error"]:
        rec["error"] = f"upstream answered {status}" + (f": {reader.error}" if reader.error else "")
        rec["error_kind"] = "upstream_http"


def _abort(request: web.Request) -> None:
    """Cut the client's connection so a broken stream never looks complete."""
    if request.transport is not None:
        request.transport.close()


def _gateway_error(status: int, message: str, provider: Provider) -> web.Response:
    return _json_response(
        status,
        {
            "error": {
                "type": "upstream_error" if status == 502 else "upstream_timeout",
                # not the upstream's URL: the gateway has no business knowing it
                "message": f"cf-llm-proxy: {message} ({provider.name})",
            }
        },
    )
