"""What each container of a bot's Docker stack looks like (CONTRACTS §4).

Pure: from a bot's config, its paths and the images, the exact creation
parameters of its four containers, its networks and volumes. The runtime
compares a hash of these with the label on an existing container, so a
changed config or a rebuilt image recreates the container and nothing else
does.

Who owns what. The gateway never runs as root: when cftui itself runs as
root, the gateway runs as GATEWAY_UID:GATEWAY_GID (`runtime/gateway_uid.py`), a uid no host
account has, and the runtime chowns `state/` and what is in `code/` to it at
each start; otherwise it runs as the operator's own uid/gid, who already
owns those files. Either way `code/.git` is mounted read-only over
`/code/.git`: a mount point cannot be renamed or replaced, so the gateway
can neither change the repository host git reads nor plant its own.

The approved tree. `/code` is read-only: the agent never changes its own
code or configuration in place. Only the bot's `writable` paths (its
workspace's `memory/` and `<bot>_save/` by default) are bind-mounted
read-write over it, and `/proposals`, a copy it may change, is where it
proposes; the operator promotes from there (cftui.proposals).

The proxies run as the operator's uid/gid with every
capability dropped, so they can read `providers.env` (0600) and append to
`audit/<bot>/` exactly as the operator could, and nothing more.

Where the bind mounts come from. `TreePaths`: the fleet home for this
machine's engine, a host's `HostLayout` (cftui.hosts.layout) for another's,
so that a remote container mounts only that host's paths.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Protocol
from urllib.parse import urlparse

from cftui.egress_control import allow_entries
from cftui.fleet import EGRESS_CONTROL_NAME, BotConfig, FleetHome
from cftui.gateway.wiring import CA_DIR, CODE_MOUNT, GATEWAY_PORT, PROPOSALS_MOUNT, STATE_MOUNT
from cftui.runtime.docker.names import LABEL_BOT, LABEL_SERVICE, container_name
from cftui.runtime.gateway_uid import gateway_user
from cftui.runtime.spend_flags import money_flags, prices_env
from cftui.runtime.telemetry_env import telemetry_env, telemetry_secret_env

GIT_MOUNT = f"{CODE_MOUNT}/.git"
FRONT_PORT = 8080
LLM_PROXY_PORT = 9090
EGRESS_PORT = 8888
PROVIDERS_ENV_MOUNT = "/run/secrets/providers.env"
CONTROL_FILE = f"/audit/{EGRESS_CONTROL_NAME}"

# Small fixed limits for the services we ship; the gateway's come from fleet.toml.
_SERVICE_LIMITS = {
    "front": {"mem_limit": "128m", "pids_limit": 128},
    "llm-proxy": {"mem_limit": "512m", "pids_limit": 256},
    "egress": {"mem_limit": "1g", "pids_limit": 256},
}
_LOG_CONFIG = {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
_HARDENING = {
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "init": True,  # signals reach the service; SIGTERM stops are quick
}
HARDENING = _HARDENING  # every container of a stack's, the one-shot installer's too


class TreePaths(Protocol):
    """Where a bot's mounted files are on the engine's host."""

    def code_dir(self, bot: str) -> PurePath: ...

    def state_dir(self, bot: str) -> PurePath: ...

    def proposals_dir(self, bot: str) -> PurePath: ...

    def audit_dir(self, bot: str) -> PurePath: ...

    def providers_env(self, bot: str) -> PurePath: ...


def int_network(bot: str) -> str:
    return f"cf-{bot}-int"


def ext_network(bot: str) -> str:
    return f"cf-{bot}-ext"


def ca_volume(bot: str) -> str:
    """The egress CA's public certificate, shared read-only with the gateway."""
    return f"cf-{bot}-ca"


def confdir_volume(bot: str) -> str:
    """The egress proxy's CA key: on tmpfs, never on disk, never in the gateway."""
    return f"cf-{bot}-egress-conf"


def proxies_user() -> str:
    return f"{os.getuid()}:{os.getgid()}"


@dataclass(frozen=True)
class VolumeSpec:
    name: str
    driver_opts: dict[str, str]


@dataclass
class ContainerSpec:
    """Everything needed to create one container with the low-level API."""

    service: str
    name: str
    image: str
    command: list[str] | None
    environment: dict[str, str]
    user: str | None
    networks: list[str]
    aliases: list[str]
    host_config: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)

    def spec_hash(self, image_id: str) -> str:
        """Changes whenever anything that shapes the container changes."""
        body = json.dumps(
            {
                "image_id": image_id,
                "command": self.command,
                "environment": self.environment,
                "user": self.user,
                "networks": self.networks,
                "aliases": self.aliases,
                "host_config": self.host_config,
                "labels": self.labels,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(body.encode()).hexdigest()[:24]


def volume_specs(bot: str) -> list[VolumeSpec]:
    """tmpfs-backed named volumes owned by the proxies' user: the CA is made
    fresh when the stack starts and its key never touches the disk."""
    uid, gid = os.getuid(), os.getgid()
    return [
        VolumeSpec(
            ca_volume(bot),
            {"type": "tmpfs", "device": "tmpfs", "o": f"size=1m,uid={uid},gid={gid},mode=0755"},
        ),
        VolumeSpec(
            confdir_volume(bot),
            {"type": "tmpfs", "device": "tmpfs", "o": f"size=4m,uid={uid},gid={gid},mode=0700"},
        ),
    ]


def _mount(target: str, source: str, kind: str = "bind", read_only: bool = False) -> dict:
    return {"Target": target, "Source": source, "Type": kind, "ReadOnly": read_only}


def _labels(bot: str, service: str) -> dict[str, str]:
    return {LABEL_BOT: bot, LABEL_SERVICE: service}


def _host_config(service: str, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        **_HARDENING,
        "restart_policy": {"Name": "unless-stopped"},
        "log_config": _LOG_CONFIG,
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=64m"},
    }
    cfg.update(_SERVICE_LIMITS.get(service, {}))
    cfg.update(extra)
    return cfg


def _container_names(hosts: list[str]) -> list[str]:
    return sorted({h for h in hosts if h and "." not in h and ":" not in h and h != "localhost"})


def upstream_hosts(bot: BotConfig) -> list[str]:
    """Upstream hosts that may be local containers (a bare name, no dots):
    the LLM proxy is attached to their networks (the demo's `cf-fake-llm`)."""
    return _container_names([urlparse(url).hostname or "" for url in bot.upstreams.values()])


def allowlisted_hosts(bot: BotConfig) -> list[str]:
    """Egress allowlist hosts that may be local containers (a bare name, no
    wildcard): the egress proxy is attached to their networks, as the LLM
    proxy to its upstreams', so that the demo's agent can fetch from
    `cf-fake-llm` through it. The operator writes the allowlist, never the agent."""
    hosts = [urlparse(f"//{entry.split()[0]}").hostname or "" for entry in bot.egress_allow]
    return _container_names([h for h in hosts if "*" not in h])


def writable_mounts(at: TreePaths, bot: BotConfig) -> list[dict]:
    """The bot's `writable` paths, read-write over the read-only `/code`
    (Docker mounts a nested target after its parent)."""
    code = at.code_dir(bot.name)
    return [_mount(f"{CODE_MOUNT}/{rel}", str(code / rel)) for rel in bot.writable_paths]


def gateway_spec(
    home: FleetHome,
    bot: BotConfig,
    image: str,
    environment: dict[str, str],
    at: TreePaths | None = None,
) -> ContainerSpec:
    paths: TreePaths = at or home
    uid, gid = gateway_user()
    limits = bot.limits
    host_config = _host_config(
        "gateway",
        mem_limit=f"{limits.memory_mb}m",
        memswap_limit=f"{limits.memory_mb}m",
        nano_cpus=int(limits.cpus * 1e9),
        pids_limit=limits.pids,
        read_only=True,
        tmpfs={"/tmp": "rw,nosuid,nodev,size=256m"},
        mounts=[
            _mount(CODE_MOUNT, str(paths.code_dir(bot.name)), read_only=True),
            # Read-only, and a mount point: the gateway cannot write, rename
            # or replace the repository that host git runs in (hostgit).
            _mount(GIT_MOUNT, str(paths.code_dir(bot.name) / ".git"), read_only=True),
            *writable_mounts(paths, bot),
            _mount(PROPOSALS_MOUNT, str(paths.proposals_dir(bot.name))),
            _mount(STATE_MOUNT, str(paths.state_dir(bot.name))),
            _mount(CA_DIR, ca_volume(bot.name), "volume", read_only=True),
        ],
    )
    return ContainerSpec(
        service="gateway",
        name=container_name(bot.name, "gateway"),
        image=image,
        command=None,  # the image's own CMD: the gateway's Dockerfile decides
        environment=environment,
        user=f"{uid}:{gid}",
        networks=[int_network(bot.name)],
        aliases=["gateway"],
        host_config=host_config,
        labels=_labels(bot.name, "gateway"),
    )


def front_spec(bot: BotConfig, image: str) -> ContainerSpec:
    host_config = _host_config(
        "front",
        read_only=True,
        port_bindings={FRONT_PORT: ("127.0.0.1", bot.gateway_port)},
    )
    return ContainerSpec(
        service="front",
        name=container_name(bot.name, "front"),
        image=image,
        command=None,
        environment={
            "CF_FRONT_UPSTREAM": f"gateway:{GATEWAY_PORT}",
            "CF_FRONT_LISTEN": str(FRONT_PORT),
        },
        user=None,  # the image's non-root user
        networks=[int_network(bot.name), ext_network(bot.name)],
        aliases=["front"],
        host_config=host_config,
        labels=_labels(bot.name, "front"),
    )


def llm_proxy_spec(
    home: FleetHome,
    bot: BotConfig,
    image: str,
    proxy_token: str,
    extra_networks: list[str],
    at: TreePaths | None = None,
) -> ContainerSpec:
    paths: TreePaths = at or home
    command = [
        "cf-llm-proxy",
        "--listen",
        f"0.0.0.0:{LLM_PROXY_PORT}",
        "--bot",
        bot.name,
        "--audit-dir",
        "/audit",
        "--providers-env",
        PROVIDERS_ENV_MOUNT,
    ]
    for provider, url in sorted(bot.upstreams.items()):
        command += ["--upstream", f"{provider}={url}"]
    if bot.budget.daily_tokens:
        command += ["--daily-token-budget", str(bot.budget.daily_tokens)]
    if bot.budget.requests_per_minute:
        command += ["--rpm", str(bot.budget.requests_per_minute)]
    command += money_flags(bot)
    telemetry = home.telemetry()
    host_config = _host_config(
        "llm-proxy",
        mounts=[
            _mount("/audit", str(paths.audit_dir(bot.name))),
            _mount(PROVIDERS_ENV_MOUNT, str(paths.providers_env(bot.name)), read_only=True),
        ],
    )
    return ContainerSpec(
        service="llm-proxy",
        name=container_name(bot.name, "llm-proxy"),
        image=image,
        command=command,
        environment={
            "CF_PROXY_TOKEN": proxy_token,
            **prices_env(home.prices()),
            **telemetry_env(telemetry),
            **telemetry_secret_env(home, telemetry),
        },
        user=proxies_user(),
        networks=[int_network(bot.name), ext_network(bot.name), *extra_networks],
        aliases=["llm-proxy"],
        host_config=host_config,
        labels=_labels(bot.name, "llm-proxy"),
    )


def egress_spec(
    home: FleetHome,
    bot: BotConfig,
    image: str,
    recipient: str,
    extra_networks: Sequence[str] = (),
    at: TreePaths | None = None,
) -> ContainerSpec:
    paths: TreePaths = at or home
    command = [
        "cf-egress",
        "--listen",
        f"0.0.0.0:{EGRESS_PORT}",
        "--bot",
        bot.name,
        "--audit-dir",
        "/audit",
        "--confdir",
        "/confdir",
        "--recipient",
        recipient,
        "--capture",
        "on" if bot.capture else "off",
    ]
    for entry in allow_entries(bot):  # one argument each: a rule holds spaces
        command += ["--allow", entry]
    command += ["--control", CONTROL_FILE, "--ca-export", CA_DIR]
    host_config = _host_config(
        "egress",
        mounts=[
            _mount("/audit", str(paths.audit_dir(bot.name))),
            _mount(CA_DIR, ca_volume(bot.name), "volume"),
            _mount("/confdir", confdir_volume(bot.name), "volume"),
        ],
    )
    return ContainerSpec(
        service="egress",
        name=container_name(bot.name, "egress"),
        image=image,
        command=command,
        environment={"HOME": "/confdir"},
        user=proxies_user(),
        networks=[int_network(bot.name), ext_network(bot.name), *extra_networks],
        aliases=["egress"],
        host_config=host_config,
        labels=_labels(bot.name, "egress"),
    )


def bind_paths(home: FleetHome, bot: str) -> list[Path]:
    """Host paths the stack bind-mounts; each must exist before create."""
    return [home.code_dir(bot), home.state_dir(bot), home.audit_dir(bot), home.providers_env(bot)]
