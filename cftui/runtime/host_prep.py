"""What the Docker runtime does to a bot's files on the host before its
gateway starts: the proxy wiring written into OpenClaw's state, `code/.git`
checked, and `state/` and `code/` handed to the gateway's user.

All of it happens inside trees the gateway can write, as root when cftui
runs as root, so every read, write and chown goes through `securefs`'s
agent-tree helpers (no link followed, no special file or hard link read or
rewritten) and a refusal is one line saying what to do.
"""

from __future__ import annotations

import json
import os

from cftui import gateway_config, hostgit
from cftui.errors import RuntimeOperationError
from cftui.fleet import BotConfig, FleetHome
from cftui.gateway_wiring import wire_models_json, wire_openclaw_config
from cftui.runtime.docker.spec import gateway_user
from cftui.securefs import list_agent_dir, own_tree

AGENTS_DIR = "agents"


def models_json_paths(home: FleetHome, bot: str) -> list[str]:
    """`agents/<id>/agent/models.json` for each agent directory in `state/`,
    relative to it (a link among them is refused when it is read)."""
    return [
        f"{AGENTS_DIR}/{agent}/agent/models.json"
        for agent in list_agent_dir(home.state_dir(bot), AGENTS_DIR)
    ]


def wire_openclaw(home: FleetHome, bot: BotConfig, env: dict[str, str]) -> None:
    """CONTRACTS §4: OpenClaw ignores env on many paths; its config holds it,
    and a per-agent `models.json` (which would win over it) is rewritten too."""
    token = env["CF_PROXY_TOKEN"]
    config = gateway_config.read_config(home, bot.name)
    wired = wire_openclaw_config(
        config, proxy_token=token, gateway_token=env.get("OPENCLAW_GATEWAY_TOKEN", "")
    )
    gateway_config.write_config(home, bot.name, wired, reason="runtime wiring", actor="cftui")
    for rel in models_json_paths(home, bot.name):
        raw = gateway_config.read_state_file(home, bot.name, rel)
        if raw is None:
            continue
        source = str(home.state_dir(bot.name) / rel)
        try:
            data = gateway_config.parse_config(raw.decode("utf-8"), source)
        except UnicodeDecodeError as exc:
            raise RuntimeOperationError(f"cannot read {source}: {exc}") from None
        new = wire_models_json(data, proxy_token=token)
        if new != data:
            gateway_config.write_state_file(home, bot.name, rel, json.dumps(new, indent=2) + "\n")


def check_gitdir(home: FleetHome, bot: str) -> None:
    """`code/.git` must be the operator's real directory: the gateway spec
    mounts it read-only over `/code/.git`, and host git runs only there."""
    try:
        hostgit.verify_gitdir(home.code_dir(bot))
    except hostgit.GitError as exc:
        raise RuntimeOperationError(f"{bot}: {exc}") from None


def hand_to_gateway(home: FleetHome, bot: str) -> None:
    """Let the gateway's user own `state/` and what is in `code/`.

    Only needed when cftui runs as root (the gateway then runs as its own
    uid, docker.spec.GATEWAY_UID). `code/` itself and `code/.git` stay
    root's, with the gateway's group allowed in `code/`, so that host git in
    the checkout never runs in a repository the gateway owns. A file with
    several names is not re-owned (one of its names may be outside).
    """
    if os.geteuid() != 0:
        return
    uid, gid = gateway_user()
    code, state = home.code_dir(bot), home.state_dir(bot)
    own_tree(state, uid, gid)
    own_tree(code, uid, gid, top=(os.lstat(code).st_uid, gid), skip_top=frozenset({".git"}))
    os.chmod(code, 0o770)  # code/ itself is the host's path, not the gateway's
