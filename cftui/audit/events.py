"""`audit/events.jsonl`: the operator's actions, one JSON line each.

Start, stop, kill, unlock, restore, config and capture changes are recorded
here so that a fleet's history can be read back after the fact.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from cfproxies.jsonl import append_line

from cftui.fleet import FleetHome
from cftui.inert import inert
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


def format_event(event: dict[str, Any]) -> str:
    """One event as one inert line (`ts  action  bot  key=value…`): the
    CLI's `audit` and the TUI's history show the same words. Details may
    hold what a bot wrote (a file name, a reason): control characters are
    escaped."""
    head = f"{event.get('ts')}  {event.get('action')}  {event.get('bot') or '-'}"
    rest = [f"{k}={v}" for k, v in event.items() if k not in ("ts", "action", "bot")]
    return inert("  ".join([head, *rest]))


def read_events(home: FleetHome, bot: str | None = None) -> Iterator[dict]:
    """The events, oldest first; torn or malformed lines are skipped."""
    yield from EventsReader(home, bot).read()


class EventsReader:
    """Reads events.jsonl from where it last stopped: `read()` yields the
    events of the whole lines appended since (a line still being written is
    left for the next read), counting in `skipped` the lines that are not an
    event (torn by a crash, or edited by hand). A file that shrank was
    replaced: it is read again from its start."""

    def __init__(self, home: FleetHome, bot: str | None = None) -> None:
        self.path = home.events_log
        self.bot = bot
        self.offset = 0
        self.skipped = 0

    def read(self) -> Iterator[dict]:
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        with f:
            if os.fstat(f.fileno()).st_size < self.offset:
                self.offset = 0
            f.seek(self.offset)
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # being appended: read it whole next time
                self.offset += len(raw)
                try:
                    event = json.loads(raw)
                except ValueError:
                    event = None
                if not isinstance(event, dict) or not isinstance(event.get("ts"), str):
                    self.skipped += 1
                    continue
                if self.bot is None or event.get("bot") == self.bot:
                    yield event
