"""fleet.toml's `[telemetry]` (issue #23): where every bot's LLM proxy sends
its spans, as the OTEL_* variables the proxy reads, in Docker and in Lima
alike; the collector's headers from `secrets/otel.env`, never fleet.toml."""

from __future__ import annotations

import pytest
from cfproxies.llm_proxy.config import load_config

from cftui.errors import FleetError
from cftui.fleet import BotConfig, FleetHome, LimaVM, Telemetry
from cftui.runtime.docker import spec
from cftui.runtime.lima.plan import bot_env, llm_secret_env
from cftui.runtime.telemetry_env import collector_hosts, telemetry_env, telemetry_secret_env

TABLE = """[telemetry]
otlp_endpoint = "http://otel-collector:4318"
capture_content = true
service_name = "fleet-a"

"""
HEADERS = "authorization=Basic%20c2VjcmV0"


def _fleet(home: FleetHome, top: str) -> None:
    home.add_bot(BotConfig(name="bot1"))
    home.fleet_toml.write_text(top + home.fleet_toml.read_text())


def _otel_env(home: FleetHome, text: str) -> None:
    home.otel_env.parent.mkdir(parents=True, exist_ok=True)
    home.otel_env.write_text(text)
    home.otel_env.chmod(0o600)


def test_no_table_sends_no_spans(home: FleetHome) -> None:
    _fleet(home, "")
    assert home.telemetry() == Telemetry()
    proxy = spec.llm_proxy_spec(home, home.bot("bot1"), "img", "tok-123456", [])
    assert not any(k.startswith("OTEL_") for k in proxy.environment)


def test_the_docker_proxy_gets_the_endpoint_and_the_headers(home: FleetHome) -> None:
    _fleet(home, TABLE)
    _otel_env(home, f"OTEL_EXPORTER_OTLP_HEADERS={HEADERS}\nOTHER=ignored\n")
    proxy = spec.llm_proxy_spec(home, home.bot("bot1"), "img", "tok-123456", [])
    env = proxy.environment
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] == "true"
    assert env["OTEL_SERVICE_NAME"] == "fleet-a"
    assert env["OTEL_EXPORTER_OTLP_HEADERS"] == HEADERS and "OTHER" not in env
    # What the proxy makes of that environment.
    cfg = load_config(["--bot", "bot1", "--audit-dir", "/tmp"], env).telemetry
    assert cfg is not None and cfg.traces_endpoint == "http://otel-collector:4318/v1/traces"
    assert cfg.capture_content and dict(cfg.headers) == {"authorization": "Basic c2VjcmV0"}
    # A bare name is a local container: the proxy joins its networks.
    assert collector_hosts(home.telemetry()) == ["otel-collector"]
    assert collector_hosts(Telemetry("http://10.0.0.5:4318")) == []


def test_the_lima_units_get_the_endpoint_and_the_secret_file_the_headers(home: FleetHome) -> None:
    _fleet(home, TABLE)
    _otel_env(home, f"OTEL_EXPORTER_OTLP_HEADERS={HEADERS}\n")
    bot = BotConfig(name="b1", runtime="lima", gateway="generic", lima=LimaVM())
    settings = home.telemetry()
    public = bot_env(bot, "age1x", {}, settings)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318\n" in public
    assert "c2VjcmV0" not in public  # bot.env is not secret
    secret = llm_secret_env({"CF_PROXY_TOKEN": "tok"}, telemetry_secret_env(home, settings))
    assert f"OTEL_EXPORTER_OTLP_HEADERS={HEADERS}\n" in secret


def test_headers_without_an_endpoint_go_nowhere(home: FleetHome) -> None:
    _fleet(home, "")
    _otel_env(home, f"OTEL_EXPORTER_OTLP_HEADERS={HEADERS}\n")
    assert telemetry_secret_env(home, home.telemetry()) == {}
    assert telemetry_env(home.telemetry()) == {}


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('otlp_endpoint = "otel:4318"', "http:// or https://"),
        ('otlp_endpoint = "http://u:pw@otel:4318"', "no credential"),
        ("capture_content = 1", "true or false"),
        ('service_name = "a b"', "service_name"),
        ('endpoint = "http://x"', "unknown key 'endpoint'"),
    ],
)
def test_a_bad_telemetry_table_is_one_line(home: FleetHome, table: str, says: str) -> None:
    _fleet(home, f"[telemetry]\n{table}\n\n")
    with pytest.raises(FleetError) as err:
        home.telemetry()
    message = str(err.value)
    assert message.startswith("fleet.toml: [telemetry]") and says in message
    assert "pw" not in message and "\n" not in message
