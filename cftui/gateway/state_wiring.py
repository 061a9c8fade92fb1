"""What a start writes into an OpenClaw gateway's `state/` so that it talks
to the bot's proxies (CONTRACTS §4), decided once for both runtimes.

The Docker runtime holds `state/` on the host and reaches it through
securefs's agent-tree helpers (runtime/host_prep.py); the Lima runtime holds
it in the VM and reaches it as the gateway's own user (runtime/lima/wiring.py).
Both read the files first, ask `plan_wiring` what to write, then write it:
so a file the agent spoiled (a link, bad JSON5, no object at the top) is
refused in one line before anything changes, every file is read as JSON5
as OpenClaw reads it, and `openclaw.json` is replaced as every other change
of it is (`gateway.config.replacement`): its previous valid form kept as
known-good, a `config` event naming the changed keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cftui.errors import ConfigError
from cftui.gateway.config import (
    CONFIG_NAME,
    Replacement,
    parse_config,
    replacement,
)

AGENTS_DIR = "agents"
# Where a per-agent models.json sits, under state/: `agents/<id>/agent/models.json`.
MODELS_JSON = "agent/models.json"
WIRING_REASON = "runtime wiring"
WIRING_ACTOR = "cftui"

Rewrite = Callable[[dict[str, Any]], dict[str, Any]]


def models_json_of(agent: str) -> str:
    """The path under `state/` of one agent's models.json."""
    return f"{AGENTS_DIR}/{agent}/{MODELS_JSON}"


@dataclass(frozen=True)
class StateWiring:
    """The writes of one start, paths relative to `state/`: the config's
    replacement (None when it is wired already), then the models.json files
    that change."""

    config: Replacement | None
    models: tuple[tuple[str, str], ...]


def _text(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {source}: {exc}") from None


def plan_wiring(
    root: str,
    config_raw: bytes | None,
    models: Mapping[str, bytes | None],
    *,
    wire_config: Rewrite,
    wire_models: Rewrite,
) -> StateWiring:
    """What to write, given the current `openclaw.json` (None: absent) and
    each listed models.json (None: gone since it was listed). `root` names
    `state/` in messages; `wire_*` are the runtime's rewrites (its proxies'
    addresses). ConfigError, in one line, when a file is bad."""
    config: dict[str, Any] = {}
    if config_raw is not None:
        source = f"{root}/{CONFIG_NAME}"
        config = parse_config(_text(config_raw, source), source)
    writes = []
    for rel, raw in models.items():
        if raw is None:
            continue
        source = f"{root}/{rel}"
        data = parse_config(_text(raw, source), source)
        new = wire_models(data)
        if new != data:
            writes.append((rel, json.dumps(new, indent=2) + "\n"))
    return StateWiring(replacement(config_raw, wire_config(config)), tuple(writes))
