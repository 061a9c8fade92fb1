"""What systemd says about a bot's units, as the runtime's ServiceStatus:
pure parsing, unit-tested without a VM, and the cache that spares a
`systemctl show` for every unit whose state has not changed.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from cftui.runtime.base import (
    KILLED,
    MISSING,
    RESTARTING,
    RUNNING,
    SERVICES,
    STARTING,
    STOPPED,
    UNKNOWN,
    ServiceStatus,
)
from cftui.runtime.lima.plan import unit_name

SHOW_PROPS = "Id,LoadState,ActiveState,SubState,Result,ActiveEnterTimestamp"
# How long a unit's start time, read with `systemctl show`, is trusted while its
# state stays the same (bounds a restart missed between two status calls).
SHOW_TTL_S = 30.0


def parse_show(text: str) -> dict[str, dict[str, str]]:
    """`systemctl show -p ...` of several units: blocks split by blank lines."""
    units: dict[str, dict[str, str]] = {}
    block: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if "Id" in block:
                units[block["Id"]] = block
            block = {}
            continue
        key, _, value = line.partition("=")
        block[key] = value
    return units


def service_status(service: str, props: dict[str, str] | None, killed: bool) -> ServiceStatus:
    if props is None or props.get("LoadState") == "not-found":
        return ServiceStatus(service, MISSING)
    active, sub = props.get("ActiveState", ""), props.get("SubState", "")
    started = None
    stamp = props.get("ActiveEnterTimestamp", "")
    if stamp.startswith("@"):
        with contextlib.suppress(ValueError):
            started = datetime.fromtimestamp(int(stamp[1:]), UTC)
    detail = f"{active}/{sub}"
    if active == "active":
        state = RUNNING
    elif active == "activating" and sub == "auto-restart":
        state = RESTARTING
    elif active in ("activating", "reloading"):
        state = STARTING
    elif killed:
        state = KILLED
    elif active in ("inactive", "failed", "deactivating"):
        state = STOPPED
        if props.get("Result") not in (None, "", "success"):
            detail += f" ({props['Result']})"
    else:
        state = UNKNOWN
    return ServiceStatus(service, state, started_at=started, detail=detail)


def parse_journal_line(line: str) -> tuple[str, datetime | None] | None:
    """The message and time of one `journalctl -o json` line; None if it is not JSON."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    msg = entry.get("MESSAGE", "")
    if isinstance(msg, list):  # journald sends non-UTF-8 messages as bytes
        msg = bytes(msg).decode(errors="replace")
    ts = None
    with contextlib.suppress(KeyError, ValueError, TypeError):
        ts = datetime.fromtimestamp(int(entry["__REALTIME_TIMESTAMP"]) / 1e6, UTC)
    return str(msg), ts


def parse_list_units(text: str) -> dict[str, dict[str, str]]:
    """`systemctl list-units --all --plain --no-legend`: one line per loaded
    unit (UNIT LOAD ACTIVE SUB DESCRIPTION), as `parse_show`'s dicts."""
    units: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split(None, 4)
        if len(parts) >= 4 and parts[0].endswith(".service"):
            units[parts[0]] = {
                "Id": parts[0],
                "LoadState": parts[1],
                "ActiveState": parts[2],
                "SubState": parts[3],
            }
    return units


class ShowCache:
    """What `systemctl show` last said of each unit (start time, result), per
    VM: `list-units` is one D-Bus call for every unit, `show` costs one per
    unit (160 ms for 40), so `show` is asked only for units whose state changed."""

    def __init__(self) -> None:
        # (vm, unit) -> (its state then, when, its start time and result)
        self._entries: dict[tuple[str, str], tuple[tuple[str, str], float, dict[str, str]]] = {}

    def forget(self, vm: str) -> None:
        """Drop a VM's entries: a VM seen again may have rebooted."""
        for key in [k for k in self._entries if k[0] == vm]:
            del self._entries[key]

    def fill(
        self,
        vm: str,
        bots: Iterable[str],
        props: dict[str, dict[str, str]],
        setup: set[str],
    ) -> list[str]:
        """Fill `props` (list-units' answer for the bots' units) from the cache
        where the state is unchanged; the units that need a `systemctl show`."""
        now = time.monotonic()
        need = []
        for bot in bots:
            for service in SERVICES:
                unit = unit_name(service, bot)
                p = props.get(unit)
                if p is None:
                    if bot in setup:  # an inactive unit systemd has unloaded
                        props[unit] = {"Id": unit, "LoadState": "loaded",
                                       "ActiveState": "inactive", "SubState": "dead"}  # fmt: skip
                    continue
                cached = self._entries.get((vm, unit))
                state = (p["ActiveState"], p["SubState"])
                if cached and cached[0] == state and now - cached[1] < SHOW_TTL_S:
                    p.update(cached[2])
                else:
                    need.append(unit)
        return need

    def remember(
        self,
        vm: str,
        units: list[str],
        props: dict[str, dict[str, str]],
        shown: dict[str, dict[str, str]],
    ) -> None:
        """Add what `systemctl show` said of `units` to `props`, and keep it."""
        now = time.monotonic()
        for unit in units:
            got = shown.get(unit, {})
            extra = {k: got.get(k, "") for k in ("Result", "ActiveEnterTimestamp")}
            props[unit].update(extra)
            state = (props[unit]["ActiveState"], props[unit]["SubState"])
            self._entries[(vm, unit)] = (state, now, extra)
