"""The proxy's configuration: flags, else environment (CONTRACTS §8), checked
once at start into a frozen dataclass; nothing reads `os.environ` later."""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cfproxies.cli import OneLineParser
from cfproxies.envfile import read_env_file
from cfproxies.llm_proxy.providers import KNOWN, Provider, provider_for
from cfproxies.llm_proxy.routes import Route, RouteError, parse_routes

DEFAULT_LISTEN = "0.0.0.0:9090"
DEFAULT_BODY_CAP = 256 * 1024
# Request bodies are held whole while a call runs (and parsed once for its
# record): in a 512 MiB container, one body of at most 32 MiB (what Anthropic
# itself accepts) and 128 MiB of bodies in flight across all calls leave
# room for their parsed copies and the records being written.
MAX_REQUEST_BYTES = 32 * 1024 * 1024
MAX_INFLIGHT_BYTES = 128 * 1024 * 1024
BOT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")  # CONTRACTS §2
PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")


class ConfigError(Exception):
    """A bad flag, variable or file, told in one line."""


@dataclass(frozen=True)
class TelemetryConfig:
    """Where each call's OpenTelemetry span goes (OTLP/HTTP), read from the
    standard OTEL_* variables or the proxy's flags (telemetry.py says why
    each is what it is). No endpoint: no span, and no SDK imported."""

    traces_endpoint: str  # the full URL spans are POSTed to (.../v1/traces)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold a key
    timeout_s: float = 10.0
    capture_content: bool = False  # prompts and answers, scrubbed (opt-in)
    service_name: str = "cf-llm-proxy"

    @property
    def shown_endpoint(self) -> str:
        """The endpoint without what a URL may carry besides the place."""
        parts = urlsplit(self.traces_endpoint)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


@dataclass(frozen=True)
class ProxyConfig:
    host: str
    port: int
    bot: str
    audit_dir: Path
    providers: Mapping[str, Provider]
    keys: Mapping[str, str] = field(repr=False)  # providers.env: VAR -> key
    token: str | None = field(default=None, repr=False)
    daily_token_budget: int | None = None
    rpm: int | None = None
    daily_usd_budget: float | None = None
    monthly_usd_budget: float | None = None
    # The operator's prices (fleet.toml's [prices."MODEL"]): model -> rates
    # in USD per million tokens; they win over the price database.
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    spend_checkpoint_s: float = 1.0  # how often spend.json is rewritten, at most
    body_cap: int = DEFAULT_BODY_CAP
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_inflight_bytes: int = MAX_INFLIGHT_BYTES
    # Methods and paths forwarded beyond each provider's inference API.
    extra_routes: tuple[Route, ...] = ()
    telemetry: TelemetryConfig | None = None

    @property
    def traffic_log(self) -> Path:
        return self.audit_dir / "traffic.jsonl"

    @property
    def scrub_rules(self) -> Path:
        return self.audit_dir / "scrub_rules.json"


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:9090")
    return host.strip("[]") or "0.0.0.0", int(port)


def _check_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"upstream {name}={url!r}: expected an http:// or https:// URL")
    return url.rstrip("/")


def _int_option(flag: str, value: str | None, minimum: int) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{flag} {value!r}: expected a whole number") from None
    if number < minimum:
        raise ConfigError(f"{flag} {value!r}: must be at least {minimum}")
    return number


def _float_option(flag: str, value: str | None, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{flag} {value!r}: expected a number of seconds") from None
    if number <= 0:
        raise ConfigError(f"{flag} {value!r}: must be positive")
    return number


def _usd_option(flag: str, value: str | None) -> float | None:
    """A money budget in USD; absent or 0: none."""
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{flag} {value!r}: expected a number of US dollars") from None
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"{flag} {value!r}: must be a finite number, 0 or more")
    return number or None


PRICE_KEYS = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok")


def parse_prices(text: str | None) -> dict[str, dict[str, float]]:
    """`--prices` / `CF_PRICES`: JSON `{model: {input_per_mtok, output_per_mtok,
    [cache_read_per_mtok], [cache_write_per_mtok]}}`, USD per million tokens
    (cftui writes it from fleet.toml, which validated it first)."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--prices: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError("--prices: expected a JSON object of model -> rates")
    out: dict[str, dict[str, float]] = {}
    for model, rates in raw.items():
        if not isinstance(rates, dict):
            raise ConfigError(f"--prices: {model!r}: expected an object of rates")
        unknown = sorted(set(rates) - set(PRICE_KEYS))
        if unknown:
            raise ConfigError(f"--prices: {model!r}: unknown key {unknown[0]!r}")
        for need in PRICE_KEYS[:2]:
            if need not in rates:
                raise ConfigError(f"--prices: {model!r}: {need} is required")
        for key, value in rates.items():
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value < 0:
                raise ConfigError(f"--prices: {model!r}: {key} must be a number, 0 or more")
        out[model] = {k: float(v) for k, v in rates.items()}
    return out


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="cf-llm-proxy",
        description="Forward a bot's LLM calls, holding the provider keys and logging each call.",
    )
    p.add_argument("--listen", help=f"HOST:PORT (CF_LISTEN; default {DEFAULT_LISTEN})")
    p.add_argument("--bot", help="bot name written into every record (CF_BOT)")
    p.add_argument(
        "--audit-dir", help="where traffic.jsonl and scrub_rules.json live (CF_AUDIT_DIR)"
    )
    p.add_argument("--providers-env", help="KEY=VALUE file of provider keys (CF_PROVIDERS_ENV)")
    p.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="PROVIDER=URL",
        help="override or add a provider's base URL (CF_UPSTREAM_<PROVIDER>); repeatable",
    )
    p.add_argument("--token", help="credential the gateway must present (CF_PROXY_TOKEN)")
    p.add_argument("--daily-token-budget", help="tokens per UTC day (CF_DAILY_TOKEN_BUDGET)")
    p.add_argument("--rpm", help="requests per minute (CF_RPM)")
    p.add_argument("--daily-usd-budget", help="USD per UTC day (CF_DAILY_USD_BUDGET)")
    p.add_argument("--monthly-usd-budget", help="USD per calendar month (CF_MONTHLY_USD_BUDGET)")
    p.add_argument(
        "--spend-checkpoint-s",
        help="seconds between rewrites of spend.json, at most (CF_SPEND_CHECKPOINT_S; default "
        "1): how fresh cftui's view of the spend is; a crossed threshold is written at once",
    )
    p.add_argument(
        "--prices",
        help="operator prices, JSON {model: {input_per_mtok, output_per_mtok, "
        "cache_read_per_mtok, cache_write_per_mtok}} in USD per million tokens (CF_PRICES)",
    )
    p.add_argument("--body-cap", help="bytes of each body kept in a record (CF_BODY_CAP)")
    p.add_argument("--connect-timeout", help="seconds to connect upstream (CF_CONNECT_TIMEOUT)")
    p.add_argument("--read-timeout", help="seconds an upstream may stay silent (CF_READ_TIMEOUT)")
    p.add_argument(
        "--max-request-bytes",
        help=f"largest request body, else 413 (CF_MAX_REQUEST_BYTES; default {MAX_REQUEST_BYTES})",
    )
    p.add_argument(
        "--max-inflight-bytes",
        help="request bytes held across all calls at once, else 503 "
        f"(CF_MAX_INFLIGHT_BYTES; default {MAX_INFLIGHT_BYTES})",
    )
    p.add_argument(
        "--allow-route",
        action="append",
        default=[],
        metavar="'PROVIDER METHOD /PATH'",
        help="forward this method and path too (CF_ALLOW_ROUTES, ';'-separated); only each "
        "provider's inference API is forwarded otherwise; * is one path segment or any "
        "provider/method, ** any path: '* * /**' forwards everything; repeatable",
    )
    p.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="export each call as an OpenTelemetry span over OTLP/HTTP to URL/v1/traces "
        "(OTEL_EXPORTER_OTLP_ENDPOINT; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the full URL)",
    )
    p.add_argument(
        "--otel-capture-content",
        action="store_true",
        help="put the scrubbed prompt and answer in each span "
        "(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true); off by default",
    )
    return p


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


def _env_flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}={value!r}: expected true or false")


def _otlp_headers(text: str, name: str) -> dict[str, str]:
    """`k=v,k2=v2` (values URL-encoded), as the OTLP exporter variables say."""
    out: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = unquote(key).strip().lower()
        if not sep or not key or not re.fullmatch(r"[a-z0-9!#$%&'*+.^_`|~-]+", key):
            # Never the value: a header here is often a credential.
            raise ConfigError(f"{name}: expected key=value pairs separated by commas")
        out[key] = unquote(value).strip()
    return out


def parse_telemetry(
    flag_endpoint: str | None, capture: bool, environ: Mapping[str, str]
) -> TelemetryConfig | None:
    """The span export, from `--otlp-endpoint` or the OTEL_* variables (the
    traces-specific ones first, as the OTLP exporter spec orders them); None
    when no endpoint is set, or the SDK is disabled (`OTEL_SDK_DISABLED`,
    `OTEL_TRACES_EXPORTER=none`)."""
    if _env_flag(environ, "OTEL_SDK_DISABLED"):
        return None
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return None
    generic = flag_endpoint or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or ""
    traces = "" if flag_endpoint else environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
    if not traces and not generic:
        return None
    url = traces or generic.rstrip("/") + "/v1/traces"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        which = "--otlp-endpoint" if flag_endpoint else "OTEL_EXPORTER_OTLP_ENDPOINT"
        raise ConfigError(f"{which}: expected an http:// or https:// URL (OTLP/HTTP)")
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol.strip() != "http/protobuf":
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol.strip()!r}: cf-llm-proxy speaks OTLP over "
            "HTTP with protobuf only (http/protobuf)"
        )
    header_var = (
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
        if environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
        else "OTEL_EXPORTER_OTLP_HEADERS"
    )
    timeout_var = (
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
        if environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        else "OTEL_EXPORTER_OTLP_TIMEOUT"
    )
    timeout = _float_option(timeout_var, environ.get(timeout_var), 10.0)
    capture = capture or _env_flag(environ, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    return TelemetryConfig(
        traces_endpoint=url,
        headers=_otlp_headers(environ.get(header_var, ""), header_var),
        timeout_s=min(timeout, 60.0),
        capture_content=capture,
        service_name=(environ.get("OTEL_SERVICE_NAME") or "cf-llm-proxy").strip(),
    )


def load_config(argv: Sequence[str] | None, environ: Mapping[str, str]) -> ProxyConfig:
    """Flags win over the environment; every problem is a one-line ConfigError."""
    args = build_parser().parse_args(argv)

    def pick(flag_value: str | None, env: str) -> str | None:
        return flag_value if flag_value not in (None, "") else (environ.get(env) or None)

    host, port = parse_listen(pick(args.listen, "CF_LISTEN") or DEFAULT_LISTEN)
    bot = pick(args.bot, "CF_BOT")
    if not bot:
        raise ConfigError("--bot (or CF_BOT) is required: it is written into every record")
    if not BOT_NAME.match(bot):
        raise ConfigError(f"--bot {bot!r}: a bot name matches ^[a-z][a-z0-9-]{{0,30}}$")
    audit = pick(args.audit_dir, "CF_AUDIT_DIR")
    if not audit:
        raise ConfigError("--audit-dir (or CF_AUDIT_DIR) is required: traffic.jsonl goes there")
    audit_dir = Path(audit)
    if audit_dir.exists() and not audit_dir.is_dir():
        raise ConfigError(f"--audit-dir {audit}: not a directory")

    urls = {name: p.base_url for name, p in KNOWN.items()}
    for key, value in environ.items():
        if key.startswith("CF_UPSTREAM_") and value:
            urls[key.removeprefix("CF_UPSTREAM_").lower().replace("_", "-")] = value
    for item in args.upstream:
        name, sep, url = item.partition("=")
        if not sep:
            raise ConfigError(f"--upstream {item!r}: expected PROVIDER=URL")
        urls[name.strip().lower()] = url.strip()
    providers: dict[str, Provider] = {}
    for name, url in urls.items():
        if not PROVIDER_NAME.match(name) or name in ("health", "metrics"):
            raise ConfigError(f"upstream {name!r}: a provider name is lowercase letters, digits, -")
        providers[name] = provider_for(name, _check_url(name, url))

    keys: dict[str, str] = {}
    env_file = pick(args.providers_env, "CF_PROVIDERS_ENV")
    if env_file:
        try:
            keys = read_env_file(env_file)
        except FileNotFoundError:
            raise ConfigError(f"--providers-env {env_file}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--providers-env {env_file}: cannot read ({exc})") from None

    token = pick(args.token, "CF_PROXY_TOKEN")
    if token is not None and len(token) < 8:
        raise ConfigError("--token: too short to be a credential (8 characters at least)")
    body_cap = _int_option("--body-cap", pick(args.body_cap, "CF_BODY_CAP"), 0)
    max_request = _int_option(
        "--max-request-bytes", pick(args.max_request_bytes, "CF_MAX_REQUEST_BYTES"), 1
    )
    max_inflight = _int_option(
        "--max-inflight-bytes", pick(args.max_inflight_bytes, "CF_MAX_INFLIGHT_BYTES"), 1
    )
    max_request = MAX_REQUEST_BYTES if max_request is None else max_request
    max_inflight = MAX_INFLIGHT_BYTES if max_inflight is None else max_inflight
    if max_inflight < max_request:
        raise ConfigError(
            f"--max-inflight-bytes {max_inflight} is below --max-request-bytes {max_request}: "
            "no body of the largest size could ever be taken"
        )
    try:
        extra_routes = parse_routes([environ.get("CF_ALLOW_ROUTES", ""), *args.allow_route])
    except RouteError as exc:
        raise ConfigError(str(exc)) from None
    return ProxyConfig(
        host=host,
        port=port,
        bot=bot,
        audit_dir=audit_dir,
        providers=providers,
        keys={k: v for k, v in keys.items() if v},
        token=token,
        daily_token_budget=_int_option(
            "--daily-token-budget", pick(args.daily_token_budget, "CF_DAILY_TOKEN_BUDGET"), 1
        ),
        rpm=_int_option("--rpm", pick(args.rpm, "CF_RPM"), 1),
        daily_usd_budget=_usd_option(
            "--daily-usd-budget", pick(args.daily_usd_budget, "CF_DAILY_USD_BUDGET")
        ),
        monthly_usd_budget=_usd_option(
            "--monthly-usd-budget", pick(args.monthly_usd_budget, "CF_MONTHLY_USD_BUDGET")
        ),
        prices=parse_prices(pick(args.prices, "CF_PRICES")),
        spend_checkpoint_s=_float_option(
            "--spend-checkpoint-s", pick(args.spend_checkpoint_s, "CF_SPEND_CHECKPOINT_S"), 1.0
        ),
        body_cap=DEFAULT_BODY_CAP if body_cap is None else body_cap,
        connect_timeout=_float_option(
            "--connect-timeout", pick(args.connect_timeout, "CF_CONNECT_TIMEOUT"), 10.0
        ),
        read_timeout=_float_option(
            "--read-timeout", pick(args.read_timeout, "CF_READ_TIMEOUT"), 300.0
        ),
        max_request_bytes=max_request,
        max_inflight_bytes=max_inflight,
        extra_routes=extra_routes,
        telemetry=parse_telemetry(args.otlp_endpoint, args.otel_capture_content, environ),
    )
