"""Egress request ledgers written by hand, in the format the egress proxy
writes (`audit/<bot>/egress.requests.json`), for the tests of its readers."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from cftui.fleet import FleetHome

T0 = datetime(2026, 12, 2, 5, 0, 0, 123000, tzinfo=UTC)


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def entry(
    host: str = "api.example.com",
    port: int = 443,
    *,
    count: int = 1,
    first: datetime = T0,
    last: datetime | None = None,
    method: str | None = None,
    path: str | None = None,
    rule: str | None = None,
    suggest: str | None = None,
    key: str | None = None,
    connect: bool = True,
) -> dict[str, Any]:
    """One ledger entry: an unlisted host by default, a rule's miss with `rule`."""
    target = f"{host}:{port}"
    if key is None:
        key = f"{target} {method} {path}" if rule else target
    return {
        "key": key,
        "host": host,
        "port": port,
        "connect": connect,
        "count": count,
        "first": stamp(first),
        "last": stamp(last or first + timedelta(seconds=60 * (count - 1))),
        "method": method,
        "path": path,
        "rule": rule,
        "suggest": suggest or (f"{host} {method} {path}" if rule else target),
    }


def write_ledger(
    home: FleetHome, bot: str, entries: list[Any], *, dropped: int = 0, **doc: Any
) -> None:
    """The ledger as the proxy replaces it: a temp file, then a rename."""
    body = {"v": 1, "bot": bot, "dropped": dropped, "requests": entries, **doc}
    write_ledger_bytes(home, bot, json.dumps(body).encode())


def write_ledger_bytes(home: FleetHome, bot: str, data: bytes) -> None:
    audit = home.audit_dir(bot)
    audit.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = audit / ".egress.requests.json.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, home.egress_requests(bot))
