"""The egress proxy's ledger of refused requests (`audit/<bot>/egress.requests.json`),
read: the one parser of it, for the CLI, the TUI and the fleet table's count.

The proxy owns the file and cftui only reads it. Every host, method and path
in it came from the agent (the request it tried), so it is read like agent
input: never through a link, never a special file, at most
`MAX_LEDGER_BYTES`, every field's type and size checked. A bad entry is
skipped and counted (the first reason kept, in one line); a file that
cannot be read at all yields no requests and one line saying why. Nothing
here raises for bad content, so a hostile ledger never stops a listing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from cftui.fleet import EGRESS_REQUESTS_NAME, FleetHome
from cftui.securefs import UnsafeFile, read_agent_file

LEDGER_VERSION = 1
# The proxy keeps at most 500 entries (the format's bound); more is not a
# ledger the proxy wrote, and the surplus is skipped.
MAX_ENTRIES = 500
# 500 entries of the largest legal fields, JSON-escaped, fit well under this.
MAX_LEDGER_BYTES = 16 << 20
MAX_HOST = 255  # the proxy cuts hosts there
MAX_KEY = 2048
MAX_METHOD = 32
MAX_PATH = 512
MAX_PATTERN = 2048
MAX_TIME = 40


@dataclass(frozen=True)
class EgressRequest:
    """One host:port (or one method/path rule's miss) the proxy refused."""

    key: str  # "host:port", or "host:port METHOD PATHPREFIX" for a rule's miss
    host: str
    port: int | None  # None: the proxy did not learn it
    connect: bool  # a CONNECT (tunnel) rather than a plain-HTTP proxy request
    count: int
    first: str  # RFC 3339 UTC, as the proxy wrote it
    last: str
    first_at: datetime
    last_at: datetime
    method: str | None  # of the latest attempt; None when the proxy could not see it
    path: str | None
    rule: str | None  # the allowlist entry that did not match; None: an unlisted host
    # The allowlist entry that would have let the latest attempt through;
    # None when none can (a name that is no hostname): it can only be dismissed.
    suggest: str | None

    @property
    def target(self) -> str:
        if self.port is None:
            return self.host
        return f"[{self.host}]:{self.port}" if _ipv6(self.host) else f"{self.host}:{self.port}"

    @property
    def attempt(self) -> str:
        """`CONNECT`, or the method and path of the latest attempt."""
        if self.method is None:
            return "CONNECT" if self.connect else "?"
        return f"{self.method} {self.path}" if self.path is not None else self.method

    def to_json(self) -> dict[str, Any]:
        """The ledger's fields, as the proxy wrote them."""
        return {
            "key": self.key,
            "host": self.host,
            "port": self.port,
            "connect": self.connect,
            "count": self.count,
            "first": self.first,
            "last": self.last,
            "method": self.method,
            "path": self.path,
            "rule": self.rule,
            "suggest": self.suggest,
        }


@dataclass(frozen=True)
class EgressLedger:
    """What the ledger holds, and what of it could not be used."""

    bot: str
    requests: tuple[EgressRequest, ...] = ()
    dropped: int = 0  # entries the proxy evicted (it keeps the most recent)
    skipped: int = 0  # entries refused here
    skip_reason: str | None = None  # the first one's reason
    error: str | None = None  # why the whole file was refused

    def find(self, key: str) -> EgressRequest | None:
        return next((r for r in self.requests if r.key == key), None)

    @property
    def note(self) -> str | None:
        """One line for the operator when something was refused, else None."""
        if self.error:
            return f"{EGRESS_REQUESTS_NAME}: {self.error}"
        if self.skipped:
            return (
                f"{EGRESS_REQUESTS_NAME}: skipped {self.skipped} bad "
                f"entr{'y' if self.skipped == 1 else 'ies'} (first: {self.skip_reason})"
            )
        return None


def _ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


class _Bad(ValueError):
    """One entry's reason for being skipped."""


def _text(entry: dict, name: str, limit: int, *, optional: bool = False) -> str | None:
    value = entry.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _Bad(f"{name} is not a string")
    if not value:
        raise _Bad(f"{name} is empty")
    if len(value) > limit:
        raise _Bad(f"{name} is longer than {limit} characters")
    return value


def _int(entry: dict, name: str, low: int, high: int) -> int:
    value = entry.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Bad(f"{name} is not an integer")
    if not low <= value <= high:
        raise _Bad(f"{name} {value} is out of range")
    return value


def _time(entry: dict, name: str) -> tuple[str, datetime]:
    text = _text(entry, name, MAX_TIME)
    assert text is not None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise _Bad(f"{name} is not an RFC 3339 time") from None
    if at.tzinfo is None:
        raise _Bad(f"{name} has no time zone")
    return text, at.astimezone(UTC)


def parse_entry(entry: Any) -> EgressRequest:
    """One entry of `requests`, checked; `_Bad` (a ValueError) says why not."""
    if not isinstance(entry, dict):
        raise _Bad("an entry is not an object")
    connect = entry.get("connect")
    if not isinstance(connect, bool):
        raise _Bad("connect is not true or false")
    first, first_at = _time(entry, "first")
    last, last_at = _time(entry, "last")
    if last_at < first_at:
        raise _Bad("last is before first")
    return EgressRequest(
        key=str(_text(entry, "key", MAX_KEY)),
        host=str(_text(entry, "host", MAX_HOST)),
        port=None if entry.get("port") is None else _int(entry, "port", 0, 65535),
        connect=connect,
        count=_int(entry, "count", 1, 1 << 63),
        first=first,
        last=last,
        first_at=first_at,
        last_at=last_at,
        method=_text(entry, "method", MAX_METHOD, optional=True),
        path=_text(entry, "path", MAX_PATH, optional=True),
        rule=_text(entry, "rule", MAX_PATTERN, optional=True),
        suggest=_text(entry, "suggest", MAX_PATTERN, optional=True),
    )


def parse_ledger(bot: str, data: bytes) -> EgressLedger:
    """The ledger from its bytes (no I/O: the fuzz harness calls this)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return EgressLedger(bot, error="not valid UTF-8 JSON: ignored")
    if not isinstance(doc, dict):
        return EgressLedger(bot, error="not a JSON object: ignored")
    if doc.get("v") != LEDGER_VERSION:
        return EgressLedger(bot, error=f"not version {LEDGER_VERSION} of the format: ignored")
    if doc.get("bot") != bot:
        return EgressLedger(bot, error=f"written for another bot, not {bot}: ignored")
    entries = doc.get("requests")
    if not isinstance(entries, list):
        return EgressLedger(bot, error="requests is not a list: ignored")
    dropped = doc.get("dropped")
    if not isinstance(dropped, int) or isinstance(dropped, bool) or dropped < 0:
        dropped = 0
    requests: list[EgressRequest] = []
    keys: set[str] = set()
    skipped, reason = 0, None
    for entry in entries[:MAX_ENTRIES]:
        try:
            request = parse_entry(entry)
            if request.key in keys:
                raise _Bad(f"key {request.key[:80]!r} is listed twice")
        except _Bad as bad:
            skipped += 1
            reason = reason or str(bad)
            continue
        keys.add(request.key)
        requests.append(request)
    if len(entries) > MAX_ENTRIES:
        skipped += len(entries) - MAX_ENTRIES
        reason = reason or f"more than the {MAX_ENTRIES} entries a ledger holds"
    return EgressLedger(bot, tuple(requests), dropped, skipped, reason)


def read_ledger(home: FleetHome, bot: str) -> EgressLedger:
    """The bot's ledger; empty when the proxy has refused nothing yet."""
    try:
        data = read_agent_file(home.audit_dir(bot), EGRESS_REQUESTS_NAME, MAX_LEDGER_BYTES)
    except FileNotFoundError:  # no audit dir yet: the bot never ran
        return EgressLedger(bot)
    except UnsafeFile as exc:
        return EgressLedger(bot, error=str(exc))
    except OSError as exc:
        return EgressLedger(bot, error=f"cannot be read ({exc.strerror or exc})")
    if data is None:
        return EgressLedger(bot)
    return parse_ledger(bot, data)
