"""`audit/events.jsonl`: the operator's actions, one JSON line each.

Start, stop, kill, unlock, restore, config and capture changes are recorded
here so that a fleet's history can be read back after the fact.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from cfproxies.jsonl import append_line

from cftui.fleet import FleetHome
from cftui.securefs import make_private_dirs


def utc_now_iso() -> str:
    """RFC 3339 UTC with milliseconds and a `Z`, as every log here writes."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def record_event(home: FleetHome, action: str, bot: str | None = None, **detail: Any) -> dict:
    """Append one event; returns the record written."""
    record: dict[str, Any] = {"ts": utc_now_iso(), "action": action, "bot": bot}
    record["by"] = _operator()
    record.update(detail)
    make_private_dirs(home.events_log.parent)
    append_line(home.events_log, record)
    return record


def read_events(home: FleetHome, bot: str | None = None) -> Iterator[dict]:
    """The events, oldest first; torn or malformed lines are skipped."""
    try:
        f = home.events_log.open("rb")
    except FileNotFoundError:
        return
    with f:
        for raw in f:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict) and (bot is None or event.get("bot") == bot):
                yield event
