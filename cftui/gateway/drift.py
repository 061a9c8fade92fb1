"""Changes the gateway made to its own `openclaw.json`: proposals too.

The approved version lives out of the gateway's reach
(`secrets/<bot>/openclaw.approved.json`, 0600: it holds the proxy token).
Every write cftui makes to the config (`cftui config`, the TUI, the
runtime's wiring, a revert) moves the approved version by exactly what that
write changed (`record_write`), so a drift the agent made before is never
approved in passing; `accept` approves the whole current file, `revert`
writes the approved one back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cftui.audit.events import record_event
from cftui.errors import ConfigError, ProposalError
from cftui.fleet import FleetHome
from cftui.gateway import config as gateway_config
from cftui.gateway.approved import read_approved, write_approved
from cftui.gateway.format import dumps


@dataclass
class Drift:
    """How the gateway's config differs from the approved one."""

    bot: str
    changed: list[str] = field(default_factory=list)  # dotted keys, never values
    approved_recorded: bool = True
    current_valid: bool = True

    @property
    def drifted(self) -> bool:
        return bool(self.changed) or not self.current_valid


def drift(home: FleetHome, bot: str) -> Drift:
    """The keys the gateway changed since the approved version."""
    approved_data = read_approved(home, bot)
    if approved_data is None:
        return Drift(bot, approved_recorded=False)
    try:
        current = gateway_config.read_config(home, bot)
    except ConfigError:
        return Drift(bot, ["."], current_valid=False)
    return Drift(bot, gateway_config.changed_keys(approved_data, current)[:200])


def diff_text(home: FleetHome, bot: str) -> str:
    """A unified diff of the approved and the current config, credentials
    masked on both sides."""
    import difflib

    approved_data = read_approved(home, bot) or {}
    raw = gateway_config.read_state_file(home, bot, gateway_config.CONFIG_NAME) or b""
    try:
        current = dumps(gateway_config.mask_secrets(gateway_config.read_config(home, bot)))
    except ConfigError:
        current = raw.decode("utf-8", "replace")
    old = dumps(gateway_config.mask_secrets(approved_data))
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            current.splitlines(keepends=True),
            "approved/openclaw.json",
            "state/openclaw.json",
        )
    )


def accept_drift(home: FleetHome, bot: str) -> list[str]:
    """The current config becomes the approved one; the keys that changed."""
    found = drift(home, bot)
    if not found.current_valid:
        raise ProposalError(
            f"{gateway_config.config_path(home, bot)} is not a valid config: "
            f"it cannot be accepted (revert it with `cftui drift {bot} --revert`)"
        )
    current = gateway_config.read_config(home, bot)
    if found.approved_recorded and not found.changed:
        raise ProposalError(f"{bot}: the config has not drifted: nothing to accept")
    write_approved(home, bot, current)
    record_event(home, "config-drift", bot, op="accept", changed=found.changed[:50])
    return found.changed


def revert(home: FleetHome, bot: str) -> list[str]:
    """Write the approved config back over the gateway's; the keys reverted."""
    approved_data = read_approved(home, bot)
    if approved_data is None:
        raise ProposalError(
            f"{bot}: no approved config is recorded yet: accept the current one first "
            f"(`cftui drift {bot} --accept`)"
        )
    found = drift(home, bot)
    if not found.drifted:
        raise ProposalError(f"{bot}: the config has not drifted: nothing to revert")
    gateway_config.write_config(home, bot, approved_data, reason="revert drift")
    record_event(home, "config-drift", bot, op="revert", changed=found.changed[:50])
    return found.changed


async def settle(home: FleetHome, bot: str, *, accept: bool) -> list[str]:
    """`accept` or `revert`, as an operation refused while the bot is locked
    (what the CLI and the TUI call); the keys settled."""
    import asyncio

    from cftui import locks

    async with locks.operation(home, bot, "drift"):
        return await asyncio.to_thread(accept_drift if accept else revert, home, bot)
