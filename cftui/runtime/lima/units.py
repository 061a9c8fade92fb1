"""What `systemctl show` says about a bot's units, as the runtime's
ServiceStatus (and journald's lines, as log lines): pure parsing,
unit-tested without a VM."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

from cftui.runtime.status import (
    KILLED,
    MISSING,
    RESTARTING,
    RUNNING,
    STARTING,
    STOPPED,
    UNKNOWN,
    ServiceStatus,
)

SHOW_PROPS = "Id,LoadState,ActiveState,SubState,Result,ActiveEnterTimestamp"


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
