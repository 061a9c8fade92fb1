"""One forwarded call and its record: opened when the request arrives,
a start line before the upstream is asked, failures noted as they happen,
and the end line sealed (bodies in, secrets out) and written exactly once.

The request bytes a call holds count against the proxy-wide bound
(`--max-inflight-bytes`) until its record is written, so a flood of large
bodies is refused instead of filling memory."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from aiohttp import web

from cfproxies.llm_proxy.pricing import (
    NO_USAGE,
    NOT_SENT,
    UNKNOWN_MODEL,
    UPSTREAM_ERROR,
    Rates,
    Usage,
)
from cfproxies.llm_proxy.sealing import sealed_line
from cfproxies.llm_proxy.state import ProxyState
from cfproxies.llm_proxy.streams import Reassembly, decode_body
from cfproxies.record import body_for_record, new_record, start_line

OFFLOAD_BYTES = 64 * 1024  # records with more body than this are sealed in the writer thread


def split_query(query: str) -> list[tuple[str, str]]:
    """A query string as (name, `name=value` as sent) pairs, in order."""
    out = []
    for part in query.split("&") if query else []:
        name, _, _ = part.partition("=")
        out.append((name, part))
    return out


class Call:
    """One forwarded call and its record, written exactly once."""

    def __init__(self, state: ProxyState, request: web.Request, provider_name: str) -> None:
        self.state = state
        self.t0 = time.perf_counter()
        self.held_bytes = 0
        raw_path, _, query = request.raw_path.partition("?")
        self.query = split_query(query)
        self.epoch = time.time()
        shown = "&".join(
            f"key={'[REDACTED]'}" if name == "key" else part for name, part in self.query
        )
        self.record = new_record(
            bot=state.config.bot,
            provider=provider_name,
            method=request.method,
            path=raw_path + (f"?{shown}" if shown else ""),
            epoch=self.epoch,
        )
        self.raw_path = raw_path
        # The gateway's trace, which the call's span joins (telemetry.py).
        self.traceparent = (
            request.headers.get("traceparent") if state.telemetry is not None else None
        )
        self.request_body: Any = None  # parsed, when it is JSON
        # Whether the request asked for a stream. The record's `stream` says
        # whether the answer was one (CONTRACTS §3): set by the relay only.
        self.asked_stream = False
        self.request_raw = b""
        self.req_wire_bytes = 0
        self.response_raw = b""  # a plain answer's body as sent (or a stream's, decoded)
        self.response_text: bytes | None = None  # that body decoded, once it has been
        self.response_parsed: Any = None
        self.reassembly: Reassembly | None = None
        self.written = False
        self.max_gap = 0.0
        self.reserved: float | None = None  # the money reserved at admission (spend.py)
        self.sent = False  # whether the request went upstream (its start line written)
        self.rates: Any = None  # its model's prices, found at admission (pricing.Rates)

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

    def write_start_line(self, tokens_est: int) -> None:
        """The start line: written before the upstream is asked, so that a
        proxy that dies mid-call leaves the call in the log (and charged)."""
        self.sent = True
        line = start_line(self.record, tokens_est)
        # Before any answer, `stream` can only say what the request asks for;
        # the end line says what the answer was.
        line["stream"] = self.asked_stream
        self.state.log.write_line(sealed_line(line, self.state.scrubber.get(), {}))

    def ms_since_start(self, t: float) -> float:
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
        rec["duration_ms"] = self.ms_since_start(time.perf_counter())
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
                rec["ttft_ms"] = self.ms_since_start(r.first_content_at)
            if r.error and not rec["error"]:
                rec["error"] = r.error
                rec["error_kind"] = "stream_error_event" if rec["stream"] else "upstream_http"
        self.state.budget.add_tokens(int(rec["tokens_in"]) + int(rec["tokens_out"]))
        checkpoint = self._price()
        try:
            self.state.metrics.observe(rec)
        except Exception as exc:  # a bug in a counter must not lose the record
            print(f"cf-llm-proxy: call not counted: {type(exc).__name__}", file=sys.stderr)
        size = len(self.request_raw) + len(self.response_raw) + (r.text_len if r else 0)
        writer = self.state.record_writer
        if size < OFFLOAD_BYTES or writer is None:
            try:
                self._seal()
            finally:
                self.release_bytes()
        else:
            # The body stays held until written: a slow writer slows new calls,
            # it does not pile up bodies in memory.
            loop = asyncio.get_running_loop()
            job = writer.submit(self._seal)
            job.add_done_callback(lambda _job: loop.call_soon_threadsafe(self.release_bytes))
        if checkpoint:  # after this call's line, in the writer's order
            if writer is None:
                self.state.spend.checkpoint(force=True)
            else:
                writer.submit(self.state.spend.checkpoint, True)

    def _price(self) -> bool:
        """The call's `cost_usd` and `cost_status` (pricing.py says what each
        status means), and its charge settled in the ledger before its end
        line is written (spend.py's checkpoint relies on that order). True
        when spend.json is due."""
        rec = self.record
        spend = self.state.spend
        cost: float | None
        rates = self.rates
        if not self.sent:
            cost, status = 0.0, NOT_SENT
        elif rec["tokens_in"] or rec["tokens_out"]:
            counts = (rec["tokens_in"], rec["tokens_out"], rec["cache_read"], rec["cache_write"])
            if isinstance(rates, Rates):  # nearly always: the price found at admission
                cost, status = rates.cost(*counts), rates.source
            else:
                cost, status = spend.pricer.cost(rec["provider"], rec["model"], Usage(*counts))
            resp_model = rec.get("model_resp")
            if cost is None and isinstance(resp_model, str) and resp_model != rec["model"]:
                cost, status = spend.pricer.cost(rec["provider"], resp_model, Usage(*counts))
        elif rates is None:
            cost, status = None, UNKNOWN_MODEL
        elif 400 <= rec["status"] < 600 and rec.get("error_kind") == "upstream_http":
            cost, status = 0.0, UPSTREAM_ERROR  # the provider said no: not billed
        else:
            cost, status = None, NO_USAGE
        rec["cost_usd"] = None if cost is None else round(cost, 10)
        rec["cost_status"] = status
        if self.reserved is None:
            return False
        if status == NO_USAGE:  # charged its reservation: hiding usage is not free
            urgent = spend.settle(rec["id"], self.reserved, False, True)
        else:
            urgent = spend.settle(rec["id"], cost or 0.0, cost is None, False)
        return spend.claim_checkpoint(urgent)

    def _seal(self) -> None:
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
            response_text = self.response_text
            if response_text is None:
                response_text = decode_body(self.response_raw, rec.get("resp_content_encoding"))
            rec["response"], cut = body_for_record(response_text, cap, self.response_parsed)
            truncated |= cut
        rec["truncated"] = truncated
        raws = {"request": self.request_raw, "response": response_text}
        self.state.log.write_line(sealed_line(rec, self.state.scrubber.get(), raws))
        if self.state.telemetry is not None:  # after sealing: every string scrubbed
            self._emit_span()

    def _emit_span(self) -> None:
        """The call's span; a failure to make one is said, never lets a call fail."""
        state = self.state
        assert state.telemetry is not None
        origin = state.origins.get(self.record["provider"])
        server = (origin[0].host, origin[0].port) if origin is not None else None
        try:
            state.telemetry.emit(
                self.record, int(self.epoch * 1e9), server, self.traceparent, self.raw_path
            )
        except Exception as exc:  # a bug in a span must not lose the record or the call
            print(f"cf-llm-proxy: span not exported: {type(exc).__name__}", file=sys.stderr)
