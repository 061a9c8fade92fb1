"""What a bot looks like inside a Lima VM, computed on the host: its users,
its loopback ports, the unit names, the non-secret settings pushed to
`/etc/clawfactory/bots/<bot>/` and the gateway's command line.

Pure functions only, so that every decision here is unit-tested without a VM.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cftui.egress_control import allow_file_text
from cftui.errors import RuntimeOperationError
from cftui.fleet import BotConfig, ModelPrice, Telemetry
from cftui.gateway import wiring
from cftui.gateway.wiring import node_heap_mb
from cftui.runtime.spend_flags import money_flags, prices_env
from cftui.runtime.telemetry_env import telemetry_env

# Where things live in the VM (lima/provision/*.sh use the same paths).
SRV = "/srv/clawfactory"
CONF_DIR = "/etc/clawfactory/bots"
KILLED_DIR = "/etc/clawfactory/killed"
PROVISION_DIR = "/var/lib/clawfactory/provision"
EGRESS_ALLOW_FILE = "egress.allow"  # in CONF_DIR/<bot>/

# Unit template of each service of CONTRACTS §4.
UNITS = {
    "front": "cf-front@{bot}.service",
    "gateway": "cf-gateway@{bot}.service",
    "llm-proxy": "cf-llm-proxy@{bot}.service",
    "egress": "cf-egress@{bot}.service",
}
# Linux user names are at most 32 characters.
MAX_USER = 32
# In-VM loopback ports, offset from the bot's gateway_port (18801..18999),
# so that bots sharing a VM never collide; only the front's port is
# forwarded to the host (lima/clawfactory.yaml portForwards).
GATEWAY_OFFSET = 2000
LLM_OFFSET = 3000
EGRESS_OFFSET = 4000
USER_PREFIXES = {"gateway": "cfgw", "llm-proxy": "cfllm", "egress": "cfeg", "front": "cffr"}


def vm_tree(bot: str, which: str) -> str:
    """A bot's `code`, `state` or `proposals` tree in the VM."""
    return f"{SRV}/bots/{bot}/{which}"


_WRITABLE_NAME = re.compile(r"[A-Za-z0-9._@+-]+")


def writable_paths(bot: BotConfig) -> list[str]:
    """The bot's `writable` paths as the VM's unit lists them (ReadWritePaths
    under /code): one inside another is already writable and is dropped; a
    name systemd or a shell would read as syntax is refused (the VM's
    gateway-paths.sh checks all of it again)."""
    paths = sorted(bot.writable_paths)
    for rel in paths:
        for part in rel.split("/"):
            if part in (".", "..", ".git") or not _WRITABLE_NAME.fullmatch(part):
                raise RuntimeOperationError(
                    f"{bot.name}: writable path {rel!r} cannot be writable in a Lima VM: "
                    "use only letters, digits and . _ @ + - in its names"
                )
    return [p for p in paths if not any(p.startswith(q + "/") for q in paths)]


def unit_name(service: str, bot: str) -> str:
    return UNITS[service].format(bot=bot)


def service_of_unit(unit: str) -> tuple[str, str] | None:
    """(service, bot) of one of our unit names, else None."""
    m = re.fullmatch(r"cf-(front|gateway|llm-proxy|egress)@([a-z][a-z0-9-]{0,30})\.service", unit)
    return (m.group(1), m.group(2)) if m else None


def unix_user(service: str, bot: str) -> str:
    """The system user of one service of one bot; hashed when too long."""
    name = f"{USER_PREFIXES[service]}-{bot}"
    if len(name) <= MAX_USER:
        return name
    digest = hashlib.sha256(bot.encode()).hexdigest()[:8]
    keep = MAX_USER - len(USER_PREFIXES[service]) - 2 - len(digest)
    return f"{USER_PREFIXES[service]}-{bot[:keep]}-{digest}"


@dataclass(frozen=True)
class Ports:
    front: int
    gateway: int
    llm: int
    egress: int


def ports_for(bot: BotConfig) -> Ports:
    p = bot.gateway_port
    return Ports(p, p + GATEWAY_OFFSET, p + LLM_OFFSET, p + EGRESS_OFFSET)


def _env_line(key: str, value: str) -> str:
    """One KEY=VALUE line that both systemd's EnvironmentFile and sh read alike."""
    if re.fullmatch(r"[A-Za-z0-9_./:@%+,=-]*", value):
        return f"{key}={value}\n"
    if "'" in value or "\n" in value:
        raise RuntimeOperationError(f"value of {key} cannot hold quotes or newlines")
    return f"{key}='{value}'\n"


def egress_allow_file(bot: BotConfig) -> str:
    """`/etc/clawfactory/bots/<bot>/egress.allow`: the allowlist the egress
    proxy starts with, one entry a line (checked with the proxy's grammar)."""
    return allow_file_text(bot)


def bot_env(
    bot: BotConfig,
    recipient: str,
    prices: dict[str, ModelPrice] | None = None,
    telemetry: Telemetry | None = None,
) -> str:
    """`/etc/clawfactory/bots/<bot>/bot.env`: read by bot-setup.sh and the proxy units."""
    ports = ports_for(bot)
    llm_args = [f"--upstream={p}={u}" for p, u in sorted(bot.upstreams.items())]
    if bot.budget.daily_tokens:
        llm_args.append(f"--daily-token-budget={bot.budget.daily_tokens}")
    if bot.budget.requests_per_minute:
        llm_args.append(f"--rpm={bot.budget.requests_per_minute}")
    llm_args += money_flags(bot)
    # The allowlist goes in a file of its own (`egress_allow_file`): a rule
    # holds spaces, which systemd would split an argument on.
    egress_args = [f"--allow-file={CONF_DIR}/{bot.name}/{EGRESS_ALLOW_FILE}"]
    for arg in (*llm_args, *egress_args):
        # systemd splits an unbraced $VAR on whitespace and knows no quoting.
        if re.search(r"[\s'\"\\$]", arg):
            raise RuntimeOperationError(
                f"{bot.name}: {arg!r} cannot hold spaces, quotes, '\\' or '$' in a Lima VM"
            )
    values = {
        "CF_BOT": bot.name,
        "CF_GW_USER": unix_user("gateway", bot.name),
        "CF_LLM_USER": unix_user("llm-proxy", bot.name),
        "CF_EGRESS_USER": unix_user("egress", bot.name),
        "CF_FRONT_USER": unix_user("front", bot.name),
        "CF_FRONT_PORT": str(ports.front),
        "CF_GATEWAY_PORT": str(ports.gateway),
        "CF_LLM_PORT": str(ports.llm),
        "CF_EGRESS_PORT": str(ports.egress),
        "CF_LLM_LISTEN": f"127.0.0.1:{ports.llm}",
        "CF_EGRESS_LISTEN": f"127.0.0.1:{ports.egress}",
        "CF_LLM_ARGS": " ".join(llm_args),
        "CF_EGRESS_ARGS": " ".join(egress_args),
        "CF_RECIPIENT": recipient,
        "CF_CAPTURE": "on" if bot.capture else "off",
        "CF_MEMORY_MAX": f"{bot.limits.memory_mb}M",
        "CF_TASKS_MAX": str(bot.limits.pids),
        "CF_CPU_QUOTA": f"{round(bot.limits.cpus * 100)}%",
        **prices_env(prices or {}),
        **telemetry_env(telemetry or Telemetry()),
    }
    return "# Written by cftui; not secret.\n" + "".join(_env_line(k, v) for k, v in values.items())


# --- the gateway's command ---------------------------------------------------

_COPY_RE = re.compile(r"^\s*(COPY|ADD)\s+(?:--\S+\s+)*(.+)$", re.IGNORECASE)
_CMD_RE = re.compile(r"^\s*(CMD|ENTRYPOINT)\s+(\[.*\])\s*$", re.IGNORECASE)
_ENV_RE = re.compile(r"^\s*ENV\s+(.+)$", re.IGNORECASE)


def _dockerfile_lines(text: str) -> list[str]:
    """Logical lines: continuations joined, comments dropped."""
    out: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not buf and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        out.append(buf + line)
        buf = ""
    if buf:
        out.append(buf)
    return out


def command_from_dockerfile(text: str) -> tuple[list[str], dict[str, str]]:
    """The exec-form CMD/ENTRYPOINT of a gateway's Dockerfile, with every path
    that a COPY put in the image mapped back to `/code/<source>` (where the
    VM's unit shows code/), and its simple `ENV k=v` settings.

    A gateway whose Dockerfile does more than copy files and run them should
    ship `.clawfactory/lima-command` (one line, shell words) instead.
    """
    copies: list[tuple[str, str]] = []
    entrypoint: list[str] = []
    cmd: list[str] = []
    env: dict[str, str] = {}
    for line in _dockerfile_lines(text):
        if m := _COPY_RE.match(line):
            parts = shlex.split(m.group(2))
            if len(parts) >= 2 and not parts[0].startswith("["):
                dest = parts[-1]
                for src in parts[:-1]:
                    copies.append((src.rstrip("/"), dest))
        elif m := _CMD_RE.match(line):
            try:
                argv = json.loads(m.group(2))
            except ValueError:
                continue
            if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
                if m.group(1).upper() == "CMD":
                    cmd = argv
                else:
                    entrypoint = argv
        elif m := _ENV_RE.match(line):
            try:
                words = shlex.split(m.group(1))
            except ValueError:
                continue
            for w in words:
                if "=" in w:
                    k, v = w.split("=", 1)
                    env[k] = v
    argv = entrypoint + cmd
    if not argv:
        raise RuntimeOperationError(
            "the gateway's Dockerfile has no exec-form CMD: add code/.clawfactory/lima-command"
        )
    return [_map_path(a, copies) for a in argv], env


def _map_path(arg: str, copies: list[tuple[str, str]]) -> str:
    """An absolute path of the image, as the same file under /code in the VM."""
    if not arg.startswith("/"):
        return arg
    pairs: list[tuple[str, str]] = []  # (path in the image, path in the VM)
    for src, dest in copies:
        rel = "" if src in (".", "") else src.removeprefix("./")
        vm = "/code/" + rel if rel else "/code"
        if dest.endswith("/"):
            pairs.append((dest.rstrip("/"), vm))  # a directory copied into dest
            if rel:
                pairs.append((dest + Path(rel).name, vm))  # a file copied into dest
        else:
            pairs.append((dest, vm))
    for image, vm in sorted(pairs, key=lambda p: -len(p[0])):
        if arg == image:
            return vm
        if arg.startswith(image + "/"):
            return vm + arg[len(image) :]
    return arg


def gateway_argv(bot: BotConfig, code_dir: Path) -> tuple[list[str], dict[str, str]]:
    """How the VM starts this bot's gateway, and the extra env its Dockerfile sets."""
    port = str(ports_for(bot).gateway)
    override = code_dir / ".clawfactory" / "lima-command"
    if override.is_file():
        return shlex.split(override.read_text(encoding="utf-8").strip()), {}
    dockerfile = code_dir / "Dockerfile"
    if bot.gateway == "openclaw":
        if (code_dir / "openclaw.mjs").is_file():
            entry = ["node", "/code/openclaw.mjs"]
        elif (code_dir / "dist" / "index.js").is_file():
            entry = ["node", "/code/dist/index.js"]
        else:
            entry = ["openclaw"]  # installed from npm by system.sh
            # A gateway only described as OpenClaw-like but running something
            # else (the demo agent) is started as its Dockerfile says.
            with contextlib.suppress(RuntimeOperationError, OSError):
                argv, env = command_from_dockerfile(dockerfile.read_text(encoding="utf-8"))
                if not any("openclaw" in a for a in argv):
                    return argv, env
        return [*entry, "gateway", "--port", port, "--bind", "loopback"], {}
    if not dockerfile.is_file():
        raise RuntimeOperationError(
            f"{code_dir} has neither a Dockerfile nor .clawfactory/lima-command: "
            "nothing tells the VM how to start this gateway"
        )
    return command_from_dockerfile(dockerfile.read_text(encoding="utf-8", errors="replace"))


def gateway_conf(
    bot: BotConfig, argv: list[str], image_env: dict[str, str], probe_url: str = ""
) -> str:
    """`/etc/clawfactory/bots/<bot>/gateway.conf`: the gateway's non-secret env.

    Every way an agent finds its model and the internet points at the bot's
    own proxies on loopback (CONTRACTS §4); the proxy token that stands in for
    the provider keys is in the secret `gateway.env` instead.
    """
    ports = ports_for(bot)
    llm = f"http://127.0.0.1:{ports.llm}"
    egress = f"http://127.0.0.1:{ports.egress}"
    ca = f"{SRV}/ca/{bot.name}/ca.pem"
    values = {k: v for k, v in image_env.items() if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)}
    values.update(
        {
            "CF_BOT": bot.name,
            "HOME": "/state",
            "OPENCLAW_STATE_DIR": "/state",
            "OPENCLAW_GATEWAY_PORT": str(ports.gateway),
            "OPENCLAW_DISABLE_BONJOUR": "1",
            "OPENCLAW_PROXY_URL": egress,
            "DEMO_PORT": str(ports.gateway),
            "ANTHROPIC_BASE_URL": f"{llm}/anthropic",
            "OPENAI_BASE_URL": f"{llm}/openai/v1",
            "GEMINI_API_BASE": f"{llm}/gemini",
            "OPENROUTER_BASE_URL": f"{llm}/openrouter/api/v1",
            "HTTP_PROXY": egress,
            "HTTPS_PROXY": egress,
            "http_proxy": egress,
            "https_proxy": egress,
            "NO_PROXY": f"127.0.0.1:{ports.llm}",
            "no_proxy": f"127.0.0.1:{ports.llm}",
            "NODE_EXTRA_CA_CERTS": ca,
            "NODE_OPTIONS": f"--max-old-space-size={node_heap_mb(bot.limits.memory_mb)}",
            "PYTHONUNBUFFERED": "1",
            "CF_GATEWAY_ARGV": base64.b64encode(json.dumps(argv).encode()).decode(),
        }
    )
    if probe_url:
        values["CF_DEMO_PROBE_URL"] = probe_url
    return "# Written by cftui; not secret.\n" + "".join(_env_line(k, v) for k, v in values.items())


def gateway_secret_env(host_gateway_env: dict[str, str]) -> str:
    """The VM's `gateway.env` (root 0600, read by systemd, never by the gateway
    as a file): the host's gateway.env plus the proxy token under every name a
    client library looks for its key."""
    values = dict(host_gateway_env)
    token = values.get("CF_PROXY_TOKEN", "")
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY"):
        values[key] = token
    return "".join(_env_line(k, v) for k, v in values.items())


def llm_secret_env(
    host_gateway_env: dict[str, str], otel_secrets: dict[str, str] | None = None
) -> str:
    """The LLM proxy's token, by environment rather than on its command line,
    and the span collector's headers (`telemetry_env.telemetry_secret_env`)."""
    values = {"CF_PROXY_TOKEN": host_gateway_env.get("CF_PROXY_TOKEN", ""), **(otel_secrets or {})}
    return "".join(_env_line(k, v) for k, v in values.items())


# --- OpenClaw's own configuration -----------------------------------------


def _to_loopback(value: Any, bot: BotConfig) -> Any:
    """The Docker wiring's proxy URLs, as the bot's own loopback ports."""
    ports = ports_for(bot)
    if isinstance(value, str):
        for docker_url, lima_url in (
            (wiring.LLM_PROXY, f"http://127.0.0.1:{ports.llm}"),
            (wiring.EGRESS_PROXY, f"http://127.0.0.1:{ports.egress}"),
        ):
            if value.startswith(docker_url):
                return lima_url + value[len(docker_url) :]
        return value
    if isinstance(value, dict):
        return {k: _to_loopback(v, bot) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_loopback(v, bot) for v in value]
    return value


def openclaw_config(
    config: dict[str, Any], bot: BotConfig, *, proxy_token: str, gateway_token: str
) -> dict[str, Any]:
    """`state/openclaw.json` for the VM: the Docker runtime's wiring (one
    implementation, cftui.gateway.wiring), its proxy URLs moved to the bot's
    loopback ports, and the gateway bound to loopback behind the front."""
    out = _to_loopback(
        # OpenClaw's workspace is the approved tree, read-only at /code in
        # the VM too (but for the writable paths); it proposes in /proposals.
        wiring.wire_openclaw_config(config, proxy_token=proxy_token, gateway_token=gateway_token),
        bot,
    )
    out["gateway"]["port"] = ports_for(bot).gateway
    out["gateway"]["bind"] = "loopback"
    return out


def openclaw_models_json(data: dict[str, Any], bot: BotConfig, *, proxy_token: str) -> dict:
    """A per-agent models.json, rewritten like openclaw.json."""
    return _to_loopback(wiring.wire_models_json(data, proxy_token=proxy_token), bot)
