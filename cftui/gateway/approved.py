"""The approved version of a gateway's `openclaw.json`, kept out of its reach
(`secrets/<bot>/openclaw.approved.json`, 0600: it holds the proxy token).

Every write cftui makes to the config moves it by exactly what that write
changed (`record_write`, called by `config.write_config`), so a drift the
agent made before is never approved in passing; `drift` compares against it.
"""

from __future__ import annotations

import copy
from typing import Any

from cftui.errors import ConfigError
from cftui.fleet import FleetHome
from cftui.gateway.format import dumps, parse_config
from cftui.securefs import atomic_write_private, make_private_dirs, read_agent_file

_MISSING = object()
_APPROVED_MAX = 8 << 20


def read_approved(home: FleetHome, bot: str) -> dict[str, Any] | None:
    """The approved config, None before cftui first wrote or accepted one."""
    path = home.approved_config(bot)
    try:
        raw = read_agent_file(path.parent, path.name, _APPROVED_MAX)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if raw is None:
        return None
    return parse_config(raw.decode("utf-8", "replace"), str(path))


def write_approved(home: FleetHome, bot: str, data: dict[str, Any]) -> None:
    path = home.approved_config(bot)
    make_private_dirs(path.parent)
    atomic_write_private(path, dumps(data))


def record_write(home: FleetHome, bot: str, before: dict[str, Any], after: dict[str, Any]) -> None:
    """cftui wrote `after` over `before`: approve what that write changed,
    and nothing else (called by `gateway_config.write_config`)."""
    current = read_approved(home, bot)
    if current is None:
        write_approved(home, bot, after)
        return
    _apply(current, before, after)
    write_approved(home, bot, current)


def _apply(target: dict, before: dict, after: dict) -> None:
    for key in set(before) | set(after):
        old, new = before.get(key, _MISSING), after.get(key, _MISSING)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict) and isinstance(target.get(key), dict):
            _apply(target[key], old, new)
        elif new is _MISSING:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(new)
