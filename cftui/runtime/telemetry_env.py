"""What fleet.toml's `[telemetry]` becomes in the LLM proxy's environment,
in one place for the Docker and the Lima runtime alike (as the prices are,
`spend_flags`): the standard OTEL_* variables the proxy reads
(`cf-llm-proxy --help`), and the collector's headers from `secrets/otel.env`.

How the spans reach the collector: the LLM proxy is the one service of a
bot with a way out (Docker: its `ext` network; Lima: the VM's network, which
nftables closes to the gateway's user only), so the collector is named like
an upstream. An address or DNS name it can reach works as it is; a bare
name (no dot, such as `otel-collector`) is taken for a local container, and
the proxy joins that container's networks, as it does for an upstream so
named (`collector_hosts`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from cfproxies.envfile import read_env_file

from cftui.errors import FleetError
from cftui.fleet import FleetHome, Telemetry

# The variables of secrets/otel.env that reach the proxy; any other is left out.
SECRET_KEYS = ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS")


def telemetry_env(settings: Telemetry) -> dict[str, str]:
    """The proxy's OTEL_* variables; none when no endpoint is set."""
    if not settings.otlp_endpoint:
        return {}
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": settings.otlp_endpoint}
    if settings.capture_content:
        env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
    if settings.service_name:
        env["OTEL_SERVICE_NAME"] = settings.service_name
    return env


def telemetry_secret_env(home: FleetHome, settings: Telemetry) -> dict[str, str]:
    """The collector's headers from `secrets/otel.env`, when there is an
    endpoint and the file exists; a file that cannot be read is one line."""
    path = home.otel_env
    if not settings.otlp_endpoint or not path.exists():
        return {}
    try:
        values = read_env_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    out = {k: values[k] for k in SECRET_KEYS if values.get(k)}
    for key, value in out.items():
        if "\n" in value or "'" in value:  # never the value: it is a credential
            raise FleetError(f"{path}: {key} cannot hold quotes or newlines")
    return out


def collector_hosts(settings: Telemetry) -> list[str]:
    """The collector's host when it is a bare name (a local container)."""
    host = urlsplit(settings.otlp_endpoint or "").hostname or ""
    return [host] if host and "." not in host and ":" not in host and host != "localhost" else []
