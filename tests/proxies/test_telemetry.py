"""Each call as an OpenTelemetry GenAI span over OTLP/HTTP (issue #23): a
receiver of our own on loopback decodes what the official SDK sends."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cfproxies.llm_proxy.config import ConfigError, load_config, parse_telemetry

from tests.proxies.otlp_receiver import Receiver, otlp_receiver
from tests.proxies.proxyhelpers import AUTH, BEARER, anthropic_body, openai_body

REPO = Path(__file__).resolve().parents[2]
MARKER = "PROMPT-MARKER-4417"
# A key of the shape the built-in scrub rules know, pasted into a prompt.
PASTED_KEY = "sk-ant-api03-" + "Z" * 60
SPAN_KIND_CLIENT = 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2


@pytest.fixture
def receiver():
    with otlp_receiver() as rx:
        yield rx


async def _spans(rx: Receiver, n: int):
    return await asyncio.to_thread(rx.wait_spans, n)


async def _call(client, url, body, headers=AUTH):
    async with client.post(url, json=body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def test_each_call_is_one_genai_span_with_no_prompt_text(start_proxy, client, receiver, fake):
    proxy = await start_proxy("--otlp-endpoint", receiver.url)
    text = f"{MARKER} {PASTED_KEY}"
    assert (
        await _call(client, f"{proxy.url}/anthropic/v1/messages", anthropic_body(text=text)) == 200
    )
    assert (
        await _call(
            client,
            f"{proxy.url}/anthropic/v1/messages",
            anthropic_body(stream=True, text=text),
        )
        == 200
    )
    assert (
        await _call(
            client, f"{proxy.url}/openai/v1/chat/completions", openai_body(text=text), BEARER
        )
        == 200
    )
    records = await proxy.wait_records(3)
    spans = await _spans(receiver, 3)
    assert len(spans) == 3
    assert set(receiver.paths) == {"/v1/traces"}
    by_id = {s.attributes["cf.call_id"]: s for s in spans}
    assert set(by_id) == {r["id"] for r in records}
    port = int(fake.url.rsplit(":", 1)[1])
    for rec in records:
        span = by_id[rec["id"]]
        a = span.attributes
        assert span.kind == SPAN_KIND_CLIENT
        assert span.name == f"chat {rec['model']}"
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == rec["provider"]
        assert a["gen_ai.request.model"] == rec["model"]
        assert a["gen_ai.response.model"] == rec["model_resp"]
        assert a["gen_ai.usage.input_tokens"] == rec["tokens_in"] > 0
        assert a["gen_ai.usage.output_tokens"] == rec["tokens_out"] > 0
        assert (a["server.address"], a["server.port"]) == ("127.0.0.1", port)
        assert a["http.response.status_code"] == 200
        assert a["cf.bot"] == "bot1"
        assert "error.type" not in a
        assert span.resource["service.name"] == "cf-llm-proxy"
        # The operation's duration: the span covers the call as recorded.
        assert abs((span.end_ns - span.start_ns) / 1e6 - rec["duration_ms"]) < 1.0
        assert not any(k.startswith("gen_ai.input") or k.startswith("gen_ai.output") for k in a)
    wire = b"".join(receiver.bodies)
    assert MARKER.encode() not in wire
    assert PASTED_KEY.encode() not in wire


async def test_with_the_opt_in_the_prompt_and_answer_are_sent_scrubbed(
    start_proxy, client, receiver
):
    proxy = await start_proxy("--otlp-endpoint", receiver.url, "--otel-capture-content")
    body = anthropic_body(text=f"{MARKER} {PASTED_KEY}")
    body["system"] = "be brief"
    assert await _call(client, f"{proxy.url}/anthropic/v1/messages", body) == 200
    (span,) = await _spans(receiver, 1)
    messages = json.loads(span.attributes["gen_ai.input.messages"])
    assert messages[0]["role"] == "user"
    (part,) = messages[0]["parts"]
    assert part["type"] == "text"
    assert MARKER in part["content"] and "[REDACTED" in part["content"]
    assert json.loads(span.attributes["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "be brief"}
    ]
    answer = json.loads(span.attributes["gen_ai.output.messages"])
    assert answer[0]["role"] == "assistant" and answer[0]["parts"][0]["type"] == "text"
    assert PASTED_KEY.encode() not in b"".join(receiver.bodies)


async def test_a_streamed_answer_is_captured_from_its_reassembly(start_proxy, client, receiver):
    proxy = await start_proxy("--otlp-endpoint", receiver.url, "--otel-capture-content")
    body = openai_body(stream=True, text=MARKER)
    assert await _call(client, f"{proxy.url}/openai/v1/chat/completions", body, BEARER) == 200
    (rec,) = await proxy.wait_records(1)
    (span,) = await _spans(receiver, 1)
    answer = json.loads(span.attributes["gen_ai.output.messages"])
    assert answer[0]["parts"] == [{"type": "text", "content": rec["response"]["text"]}]


async def test_a_failed_call_carries_its_error_type(start_proxy, client, receiver):
    proxy = await start_proxy("--otlp-endpoint", receiver.url)
    headers = {**AUTH, "x-fake-status": "429"}
    assert (
        await _call(client, f"{proxy.url}/anthropic/v1/messages", anthropic_body(), headers) == 429
    )
    refused = {"x-api-key": "not-the-token-at-all"}
    assert (
        await _call(client, f"{proxy.url}/anthropic/v1/messages", anthropic_body(), refused) == 401
    )
    spans = await _spans(receiver, 2)
    kinds = sorted(s.attributes["error.type"] for s in spans)
    assert kinds == ["auth", "upstream_http"]
    assert {s.status_code for s in spans} == {STATUS_ERROR}
    await proxy.wait_records(2)


async def test_the_span_joins_the_gateways_trace(start_proxy, client, receiver):
    proxy = await start_proxy("--otlp-endpoint", receiver.url)
    trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {**AUTH, "traceparent": f"00-{trace}-{parent}-01"}
    assert (
        await _call(client, f"{proxy.url}/anthropic/v1/messages", anthropic_body(), headers) == 200
    )
    hostile = {**AUTH, "traceparent": "00-zz-" + "x" * 500}  # the agent's header: ignored
    assert (
        await _call(client, f"{proxy.url}/anthropic/v1/messages", anthropic_body(), hostile) == 200
    )
    spans = await _spans(receiver, 2)
    joined = [s for s in spans if s.trace_id == trace]
    assert len(joined) == 1 and joined[0].parent_span_id == parent
    (fresh,) = [s for s in spans if s.trace_id != trace]
    assert fresh.parent_span_id == ""
    await proxy.wait_records(2)


async def test_a_collector_that_never_answers_delays_no_call(start_proxy, client, receiver):
    """The first export is held (read, never answered) and calls go on
    being answered, recorded and counted while it is."""
    receiver.hold()
    proxy = await start_proxy("--otlp-endpoint", receiver.url)
    url = f"{proxy.url}/anthropic/v1/messages"
    assert await _call(client, url, anthropic_body()) == 200
    assert await asyncio.to_thread(receiver.wait_held)  # the export is stuck in the collector
    statuses = [await _call(client, url, anthropic_body()) for _ in range(20)]
    assert statuses == [200] * 20
    assert receiver.held == 1  # still stuck: every one of those calls finished meanwhile
    assert len(await proxy.wait_records(21)) == 21
    assert receiver.spans == []
    receiver.release()
    assert len(await _spans(receiver, 21)) == 21


async def test_stopping_with_a_hung_collector_does_not_hang(start_proxy, client, receiver):
    receiver.hold()
    proxy = await start_proxy("--otlp-endpoint", receiver.url)
    assert await _call(client, f"{proxy.url}/anthropic/v1/messages", anthropic_body()) == 200
    assert await asyncio.to_thread(receiver.wait_held)
    # Bounded by telemetry.SHUTDOWN_WAIT_S, not the exporter's 10 s timeout;
    # the test's own timeout is what would catch a hang.
    await asyncio.wait_for(proxy.stop(), timeout=8)


def test_without_an_endpoint_the_sdk_is_never_imported(tmp_path):
    code = (
        "import sys\n"
        "from cfproxies.llm_proxy.config import load_config\n"
        "from cfproxies.llm_proxy.app import make_app\n"
        f"make_app(load_config(['--bot', 'b', '--audit-dir', {str(tmp_path)!r}], {{}}))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {"PYTHONPATH": f"{REPO}:{REPO / 'proxies'}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("environ", "flag", "url"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, None, "http://c:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, None, "http://c:4318/v1/traces"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t/x",
            },
            None,
            "https://t/x",
        ),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t/x"},
            "http://f:1",
            "http://f:1/v1/traces",
        ),
    ],
)
def test_the_endpoint_follows_the_otlp_exporter_variables(environ, flag, url):
    cfg = parse_telemetry(flag, False, environ)
    assert cfg is not None and cfg.traces_endpoint == url


def test_no_endpoint_or_a_disabled_sdk_means_no_spans():
    assert parse_telemetry(None, True, {}) is None
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    assert parse_telemetry(None, False, {**on, "OTEL_SDK_DISABLED": "true"}) is None
    assert parse_telemetry(None, False, {**on, "OTEL_TRACES_EXPORTER": "none"}) is None


def test_content_capture_and_headers_from_the_environment():
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://user:pw@c:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20abc,x-team=ops",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "True",
        "OTEL_SERVICE_NAME": "bots",
    }
    cfg = parse_telemetry(None, False, env)
    assert cfg is not None
    assert dict(cfg.headers) == {"authorization": "Bearer abc", "x-team": "ops"}
    assert cfg.capture_content and cfg.service_name == "bots"
    assert cfg.shown_endpoint == "http://c:4318"  # no credential in what is printed
    assert "abc" not in repr(cfg)


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4318"}, "http:// or https://"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "http/protobuf",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_HEADERS": "sekrit"},
            "key=value",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c",
                "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "maybe",
            },
            "true or false",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_TIMEOUT": "x"}, "number"),
    ],
)
def test_a_bad_telemetry_setting_is_one_line(environ, needle):
    argv = ["--bot", "b", "--audit-dir", "/tmp"]
    with pytest.raises(ConfigError) as err:
        load_config(argv, environ)
    message = str(err.value)
    assert needle in message and "\n" not in message
    assert "sekrit" not in message


def test_messages_of_each_wire_format_take_the_conventions_shape():
    from cfproxies.llm_proxy.genai_content import input_messages, output_messages

    gemini = {
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "contents": [{"role": "user", "parts": [{"text": "hi"}, {"functionCall": {"name": "f"}}]}],
    }
    messages, system = input_messages(gemini)
    assert system == [{"type": "text", "content": "sys"}]
    assert messages == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "hi"},
                {"type": "tool_call", "id": None, "name": "f", "arguments": None},
            ],
        }
    ]
    openai = {
        "choices": [{"message": {"role": "assistant", "content": "yo"}, "finish_reason": "stop"}]
    }
    assert output_messages(openai, False) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "yo"}], "finish_reason": "stop"}
    ]
    gem_out = {"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"}]}
    assert output_messages(gem_out, False)[0]["finish_reason"] == "STOP"


@pytest.mark.parametrize(
    "hostile",
    [
        None,
        "text cut at the cap",
        {"messages": 7},
        {"messages": [None, 3, [], {"role": 5, "content": {"type": []}}]},
        {"messages": [{"role": "user", "content": [{"type": "tool_use", "input": "x"}, 9]}]},
        {"system": {"type": 3}, "contents": "plain"},
        {"messages": [{"tool_calls": [None, {"function": "notadict"}]}]},
    ],
)
def test_the_agents_odd_bodies_never_raise(hostile):
    from cfproxies.llm_proxy.genai_content import input_messages, output_messages

    input_messages(hostile)
    output_messages(hostile, False)
    output_messages(hostile, True)
    json.dumps(input_messages(hostile))
