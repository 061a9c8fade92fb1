"""Each call as an OpenTelemetry span (the GenAI semantic conventions'
inference span), exported over OTLP/HTTP with the official SDK, only when
an endpoint is configured (`config.TelemetryConfig`).

Why it is shaped this way:
- the SDK is imported here, and this module only by `make_app` when an
  endpoint is set: a proxy without one loads none of it (~200 ms of imports
  measured, see bench/README.md);
- spans go through a `BatchSpanProcessor`: `span.end()` puts the span in a
  bounded queue (`MAX_QUEUE` spans, the oldest dropped when full) and a
  thread of the SDK's exports batches, so a slow, dead or hung collector
  costs a call nothing but the span's own making; shutdown waits at most
  `SHUTDOWN_WAIT_S` for it (Docker kills 10 s after SIGTERM);
- a span is made from the call's record once the record is sealed
  (`Call._seal`), so every string in it (the model the agent named, the
  prompt if the operator opted in) has been through the scrubber;
- the prompt and the answer go in only with the opt-in
  (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` or
  `--otel-capture-content`), as `gen_ai.input.messages`,
  `gen_ai.system_instructions` and `gen_ai.output.messages` (JSON strings);
- `traceparent` from the gateway, when it sends one, makes the span a
  child of the agent's own (OpenClaw emits gen_ai spans too).

The SDK reads its other standard variables itself, at start:
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, the exporter's
certificate and compression ones."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from cfproxies.llm_proxy.config import TelemetryConfig
from cfproxies.llm_proxy.genai_content import input_messages, output_messages

MAX_QUEUE = 2048  # spans waiting for the exporter; the oldest go first when full
MAX_BATCH = 512
SCHEDULE_DELAY_MS = 1000  # a span reaches the collector within about a second
SHUTDOWN_WAIT_S = 1.0
LOG_EVERY_S = 60.0  # the SDK's warnings (queue full, export failed), at most once a minute each

NOISY_LOGGERS = (
    "opentelemetry.sdk._shared_internal",  # "Queue full, dropping span"
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",  # "Failed to export"
    "opentelemetry.exporter.otlp.proto.http._common",
)

# The GenAI conventions' provider names for the providers the proxy knows;
# any other is named as the operator named it.
PROVIDER_NAMES = {"anthropic": "anthropic", "openai": "openai", "gemini": "gcp.gemini"}


class _OncePerMinute(logging.Filter):
    """With a dead collector the SDK warns on every export and every dropped
    span: say each kind of trouble once a minute, not thousands of times."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        key = str(record.msg)
        if now - self._last.get(key, -LOG_EVERY_S) < LOG_EVERY_S:
            return False
        self._last[key] = now
        return True


def operation_name(path: str) -> str:
    """`gen_ai.operation.name` from the path the gateway asked for."""
    if "embed" in path.rsplit("/", 1)[-1].lower():
        return "embeddings"
    if "generateContent" in path or "GenerateContent" in path:
        return "generate_content"
    if path.endswith("/completions") and not path.endswith("/chat/completions"):
        return "text_completion"
    return "chat"


def _traceparent(value: str | None) -> Any:
    """The gateway's span as a parent context, from a W3C `traceparent`
    (`00-<32 hex>-<16 hex>-<2 hex>`); None if absent or malformed."""
    if not value or len(value) > 128:
        return None
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    parent = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 1))
    return set_span_in_context(NonRecordingSpan(parent))


class SpanExport:
    """The proxy's tracer: one span per finished call (`emit`)."""

    def __init__(self, config: TelemetryConfig, bot: str) -> None:
        self.config = config
        once = _OncePerMinute()
        for name in NOISY_LOGGERS:  # a logger's filter sees only its own records
            logging.getLogger(name).addFilter(once)
        resource = Resource.create({"service.name": config.service_name, "cf.bot": bot})
        # No atexit hook: its shutdown would wait 30 s on a hung collector.
        self.provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        exporter = OTLPSpanExporter(
            endpoint=config.traces_endpoint,
            headers=dict(config.headers),
            timeout=config.timeout_s,
        )
        self.processor = BatchSpanProcessor(
            exporter,
            max_queue_size=MAX_QUEUE,
            max_export_batch_size=MAX_BATCH,
            schedule_delay_millis=SCHEDULE_DELAY_MS,
            export_timeout_millis=config.timeout_s * 1000,
        )
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("cfproxies.llm_proxy")
        self.emitted = 0

    def emit(
        self,
        rec: dict[str, Any],
        start_ns: int,
        server: tuple[str, int] | None,
        traceparent: str | None,
        path: str,
    ) -> None:
        """One finished call's span, from its sealed (scrubbed) record."""
        provider = rec["provider"]
        op = operation_name(path)
        model = rec["model"] if isinstance(rec["model"], str) else None
        system = PROVIDER_NAMES.get(provider, provider)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": op,
            "gen_ai.provider.name": system,
            # The name before semconv 1.37, which backends on older
            # conventions still read.
            "gen_ai.system": system,
            "cf.bot": rec["bot"],
            "cf.call_id": rec["id"],  # its line in traffic.jsonl
            "cf.stream": bool(rec["stream"]),
        }
        if model:
            attrs["gen_ai.request.model"] = model
        if server is not None:
            attrs["server.address"], attrs["server.port"] = server
        for key, value in (
            ("gen_ai.response.model", rec.get("model_resp")),
            ("gen_ai.response.id", rec.get("response_id")),
        ):
            if isinstance(value, str) and value:
                attrs[key] = value
        stop = rec.get("stop_reason")
        if isinstance(stop, str) and stop:
            attrs["gen_ai.response.finish_reasons"] = [stop]
        status = rec["status"]
        if status:
            attrs["http.response.status_code"] = status
        if rec["tokens_in"] or rec["tokens_out"]:
            attrs["gen_ai.usage.input_tokens"] = rec["tokens_in"]
            attrs["gen_ai.usage.output_tokens"] = rec["tokens_out"]
            if rec["cache_read"]:
                attrs["gen_ai.usage.cache_read.input_tokens"] = rec["cache_read"]
            if rec["cache_write"]:
                attrs["gen_ai.usage.cache_creation.input_tokens"] = rec["cache_write"]
        cost = rec.get("cost_usd")
        if isinstance(cost, int | float):
            attrs["cf.cost_usd"] = float(cost)
        failed = bool(rec["error"]) or status >= 400 or status == 0
        if failed:
            attrs["error.type"] = rec.get("error_kind") or str(status or "_OTHER")
        if self.config.capture_content:
            self._content(rec, attrs)
        span = self.tracer.start_span(
            f"{op} {model}" if model else op,
            context=_traceparent(traceparent),
            kind=SpanKind.CLIENT,
            attributes=attrs,
            start_time=start_ns,
        )
        if failed:
            span.set_status(Status(StatusCode.ERROR, str(rec.get("error_kind") or status)))
        span.end(end_time=start_ns + int(rec["duration_ms"] * 1_000_000))
        self.emitted += 1

    @staticmethod
    def _content(rec: dict[str, Any], attrs: dict[str, Any]) -> None:
        """The scrubbed prompt and answer, as the conventions shape them."""
        messages, system = input_messages(rec["request"])
        if messages is not None:
            attrs["gen_ai.input.messages"] = json.dumps(messages, ensure_ascii=False)
        if system is not None:
            attrs["gen_ai.system_instructions"] = json.dumps(system, ensure_ascii=False)
        answer = output_messages(rec["response"], bool(rec["stream"]))
        if answer is not None:
            attrs["gen_ai.output.messages"] = json.dumps(answer, ensure_ascii=False)
        if rec.get("truncated"):
            attrs["cf.content_truncated"] = True

    def shutdown(self) -> None:
        """Send what is queued, waiting at most SHUTDOWN_WAIT_S: the SDK's
        own shutdown would wait for a hung collector up to its timeout."""
        done = threading.Thread(target=self.provider.shutdown, name="cf-otel-shutdown", daemon=True)
        done.start()
        done.join(SHUTDOWN_WAIT_S)
