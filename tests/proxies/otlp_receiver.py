"""A test OTLP/HTTP trace receiver on loopback: a small HTTP server that
decodes each `ExportTraceServiceRequest` with opentelemetry-proto (the
collector's own message types) and keeps the spans and the raw bodies.
`hold()` makes it a collector that never answers: each export request is
read and then left waiting until `release()`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


@dataclass
class Span:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    status_code: int
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass
class Receiver:
    url: str
    spans: list[Span] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    held: int = 0  # export requests read and not answered (while holding)
    gate: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def wait_held(self, timeout: float = 10.0) -> bool:
        """Whether an export request is being held, within `timeout`."""
        with self.arrived:
            return self.arrived.wait_for(lambda: self.held > 0, timeout)

    def wait_spans(self, n: int, timeout: float = 10.0) -> list[Span]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.spans) >= n, timeout)
            return list(self.spans)


def _handler(rx: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if not rx.gate.is_set():
                with rx.arrived:
                    rx.held += 1
                    rx.arrived.notify_all()
                rx.gate.wait()
                with rx.arrived:
                    rx.held -= 1
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            spans = []
            for rs in request.resource_spans:
                resource = {a.key: _value(a.value) for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        spans.append(
                            Span(
                                name=s.name,
                                kind=s.kind,
                                trace_id=s.trace_id.hex(),
                                span_id=s.span_id.hex(),
                                parent_span_id=s.parent_span_id.hex(),
                                start_ns=s.start_time_unix_nano,
                                end_ns=s.end_time_unix_nano,
                                status_code=s.status.code,
                                attributes={a.key: _value(a.value) for a in s.attributes},
                                resource=resource,
                            )
                        )
            with rx.arrived:
                rx.bodies.append(body)
                rx.paths.append(self.path)
                rx.spans.extend(spans)
                rx.arrived.notify_all()
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    return Handler


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Receiver("")))
    rx = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(rx)
    server.daemon_threads = True
    rx.release()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rx
    finally:
        rx.release()
        server.shutdown()
        server.server_close()
