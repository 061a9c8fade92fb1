"""Telemetry out on the real engine (issue #23): a bot's LLM proxy, from the
clawfactory/llm-proxy image, sends its calls' spans to a collector named in
fleet.toml's `[telemetry]` by a bare container name (so the proxy joins the
collector's network), with the headers of `secrets/otel.env`; both proxies
answer `/metrics` at their container addresses for a scraper on the host.

The collector is a container of the test's own on the test's network: a
small HTTP server that keeps each export's body, read back by the test and
decoded with opentelemetry-proto."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from cftui.fleet import BotConfig

from .helpers import TEST_LABEL, World, http_get, start_bot, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

COLLECTOR = r"""
import base64, json, http.server
got = []
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        got.append({"path": self.path, "auth": self.headers.get("authorization"),
                    "body": base64.b64encode(body).decode()})
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def do_GET(self):
        data = json.dumps(got).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 4318), H).serve_forever()
"""
AUTH = "Bearer tele-secret-123"


@pytest.fixture(scope="module")
def collector(world: World) -> Iterator[str]:
    """The collector's address on the test's network."""
    image = world.client.images.get("clawfactory/fake-llm:latest")  # made by the world
    name = f"cftest-{world.suffix}-otel"
    box = world.client.containers.run(
        image,
        ["/opt/cf/bin/python3", "-c", COLLECTOR],
        name=name,
        network=world.network,
        detach=True,
        labels={TEST_LABEL: world.suffix},
    )
    try:

        def address() -> str | None:
            box.reload()
            ip = box.attrs["NetworkSettings"]["Networks"][world.network]["IPAddress"]
            try:
                http_get(f"http://{ip}:4318/", 1)
            except OSError:
                return None
            return ip

        yield wait_for(address, 60, "the test collector")
    finally:
        box.remove(force=True)


@pytest.fixture(scope="module")
def bot(world: World, collector: str) -> BotConfig:
    name = f"o{world.suffix}"
    config = world.add_bot(name)
    text = world.home.fleet_toml.read_text()
    world.home.fleet_toml.write_text(
        f'[telemetry]\notlp_endpoint = "http://cftest-{world.suffix}-otel:4318"\n\n' + text
    )
    world.home.otel_env.write_text(f"OTEL_EXPORTER_OTLP_HEADERS=authorization={AUTH}\n")
    world.home.otel_env.chmod(0o600)
    asyncio.run(start_bot(world, config))
    return config


def _ip(world: World, container: str) -> str:
    attrs = world.client.api.inspect_container(container)
    networks = attrs["NetworkSettings"]["Networks"]
    return next(n["IPAddress"] for k, n in networks.items() if k.endswith("-ext"))


def test_the_proxys_spans_reach_a_collector_named_in_fleet_toml(
    world: World, bot: BotConfig, collector: str
) -> None:
    def spans() -> list | None:
        exports = json.loads(http_get(f"http://{collector}:4318/"))
        found = []
        for export in exports:
            request = ExportTraceServiceRequest()
            request.ParseFromString(base64.b64decode(export["body"]))
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    found += [(export, s) for s in ss.spans]
        return found or None

    found = wait_for(spans, 90, "a span at the collector")
    export, span = found[0]
    assert export["path"] == "/v1/traces" and export["auth"] == AUTH
    attrs = {a.key: a.value for a in span.attributes}
    assert attrs["gen_ai.provider.name"].string_value in ("anthropic", "openai")
    assert attrs["cf.bot"].string_value == bot.name
    assert span.name.startswith("chat")
    ids = {
        json.loads(line)["id"] for line in world.home.traffic_log(bot.name).read_text().splitlines()
    }
    assert attrs["cf.call_id"].string_value in ids


def test_both_proxies_answer_metrics_at_their_container_addresses(
    world: World, bot: BotConfig
) -> None:
    llm = _ip(world, f"cf-{bot.name}-llm-proxy")

    def calls() -> float:
        text = http_get(f"http://{llm}:9090/metrics").decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        return sum(s.value for s in families["cf_llm_calls"].samples)

    assert wait_for(calls, 60, "a call counted in /metrics") > 0
    egress = _ip(world, f"cf-{bot.name}-egress")
    text = http_get(f"http://{egress}:8888/metrics").decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"cf_egress_allowed", "cf_egress_refused"} <= names
