"""Turning MITM capture on and off, and editing a bot's egress allowlist.

fleet.toml is the record of intent (`capture`, `egress_allow`); the running
egress proxy hears of a change through its control file in the bot's audit
dir (mounted into the egress container only), which is replaced atomically
and applied by the proxy within half a second, without a restart and without
dropping open connections. The proxy answers in `egress.stats.json`; when it
is running, we wait briefly for it to confirm.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfproxies.egress.patterns import PatternError, format_allow_lines, normalise_patterns

from cftui.audit.events import record_event
from cftui.errors import FleetError, UsageError
from cftui.fleet import BotConfig, FleetHome
from cftui.securefs import atomic_write_private, make_private_dirs

CONFIRM_SECONDS = 2.0


@dataclass(frozen=True)
class ApplyResult:
    """What changed, and whether a running proxy confirmed it."""

    bot: BotConfig
    confirmed: bool | None  # None: no proxy seems to be running


def control_path(home: FleetHome, bot: str) -> Path:
    """The control file on the host (under `/audit/` in the egress container)."""
    return home.egress_control(bot)


def stats_path(home: FleetHome, bot: str) -> Path:
    return home.egress_stats(bot)


def read_stats(home: FleetHome, bot: str) -> dict[str, Any] | None:
    """The proxy's last word: live capture state, allowlist, refusal counts."""
    try:
        data = json.loads(stats_path(home, bot).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def allow_entries(config: BotConfig) -> list[str]:
    """The bot's allowlist from fleet.toml, checked with the proxy's own
    grammar (`cfproxies.egress.patterns`): what every way of handing it to
    the proxy (flags, the Lima allow file, the control file) sends."""
    try:
        return normalise_patterns(config.egress_allow)
    except PatternError as exc:
        raise FleetError(f"fleet.toml: [bots.{config.name}] egress_allow: {exc}") from None


def allow_file_text(config: BotConfig) -> str:
    """The allowlist as `cf-egress --allow-file` reads it: one entry a line
    (an entry with methods and paths holds spaces and commas)."""
    return format_allow_lines(allow_entries(config))


def write_control(home: FleetHome, config: BotConfig) -> int:
    """Replace the control file from `config`; returns its generation."""
    generation = time.time_ns()
    allow = allow_entries(config)
    make_private_dirs(home.audit_dir(config.name))
    doc = {"capture": config.capture, "allow": allow, "generation": generation}
    atomic_write_private(control_path(home, config.name), json.dumps(doc) + "\n")
    return generation


def sync_control(home: FleetHome, bot: str) -> None:
    """Make the control file match fleet.toml (the runtime calls this before start)."""
    write_control(home, home.bot(bot))


def _push(home: FleetHome, config: BotConfig, wait: bool) -> ApplyResult:
    stats = read_stats(home, config.name)
    running = bool(stats and stats.get("running"))
    generation = write_control(home, config)
    if not wait or not running:
        return ApplyResult(config, None)
    deadline = time.monotonic() + CONFIRM_SECONDS
    while time.monotonic() < deadline:
        stats = read_stats(home, config.name)
        if stats and stats.get("control_generation") == generation:
            return ApplyResult(config, True)
        time.sleep(0.05)
    return ApplyResult(config, False)


def set_capture(home: FleetHome, bot: str, on: bool, wait: bool = True) -> ApplyResult:
    """Turn capture on or off: fleet.toml, the running proxy, the events log."""
    config = home.update_bot(bot, capture=on)
    result = _push(home, config, wait)
    record_event(home, "capture", bot, state="on" if on else "off", applied=result.confirmed)
    return result


def _validated(patterns: list[str] | tuple[str, ...]) -> list[str]:
    try:
        return normalise_patterns(patterns)
    except PatternError as exc:
        raise UsageError(str(exc)) from None


def set_allowlist(
    home: FleetHome, bot: str, patterns: list[str] | tuple[str, ...], wait: bool = True
) -> ApplyResult:
    """Replace the allowlist; every pattern is checked before anything is written."""
    allow = _validated(patterns)
    config = home.update_bot(bot, egress_allow=allow)
    result = _push(home, config, wait)
    record_event(home, "egress", bot, allow=allow, applied=result.confirmed)
    return result


def edit_allowlist(
    home: FleetHome,
    bot: str,
    add: list[str] | tuple[str, ...] = (),
    remove: list[str] | tuple[str, ...] = (),
    wait: bool = True,
) -> ApplyResult:
    """Add and remove patterns; removing one that is not listed is an error."""
    current = list(home.bot(bot).egress_allow)
    wanted_out = _validated(remove)
    missing = [p for p in wanted_out if p not in current]
    if missing:
        raise UsageError(
            f"not on {bot}'s egress allowlist: {', '.join(missing)} "
            f"(listed: {', '.join(current) or 'nothing'})"
        )
    kept = [p for p in current if p not in wanted_out]
    return set_allowlist(home, bot, kept + _validated(add), wait)
