"""Egress requests as proposals: what the proxy refused, less what the
operator settled, and the two ways to settle one (allow, dismiss).

The ledger is the egress proxy's (`egress_requests`); what the operator did
about its entries is cftui's own, in `proposals/<bot>/egress-dismissed.json`
of the fleet home (0600 in a 0700 directory, out of every tree the gateway
writes and of `audit/`, which the proxy writes).

- **Allow** adds the entry's `suggest` to the bot's allowlist through
  `egress_control.edit_allowlist`, exactly as `cftui egress BOT --allow`
  does (fleet.toml, then the running proxy, live, which records its `egress`
  event), and records `egress-allow`. Refused while the bot is locked, as a
  promotion is. The entry is then hidden until the proxy refuses it again
  (its `last` is later than the moment the allow was applied).
- **Dismiss** hides the entry for a window (24 h unless told otherwise) and
  records `egress-dismiss`; it changes nothing the bot can reach, so it is
  allowed while the bot is locked. "Refused again after the window" means
  the entry's `last` is later than the dismissal's time plus the window: a
  host the agent keeps trying comes back once a day at most, and one it
  stopped trying stays out of the list for good. The rule does not depend
  on the clock at the time of reading, so every face counts the same.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from cftui import locks
from cftui.audit.events import record_event
from cftui.egress_control import ApplyResult, edit_allowlist
from cftui.errors import UsageError
from cftui.fleet import FleetHome
from cftui.proposals.egress_requests import EgressLedger, EgressRequest, read_ledger
from cftui.securefs import (
    PRIVATE_FILE,
    UnsafeFile,
    atomic_write_private,
    make_private_dirs,
    read_agent_file,
)

DEFAULT_WINDOW = timedelta(hours=24)
SETTLED_VERSION = 1
MAX_SETTLED = 5000  # entries kept; the oldest go first
MAX_SETTLED_BYTES = 32 << 20
_LOCK_NAME = ".egress-dismissed.lock"

Action = Literal["dismissed", "allowed"]


@dataclass(frozen=True)
class Settled:
    """What the operator did about one key, and when."""

    action: Action
    at: datetime
    window_s: float = 0.0  # how long after `at` a new refusal stays hidden

    def hides(self, request: EgressRequest) -> bool:
        return request.last_at <= self.at + timedelta(seconds=self.window_s)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "at": _iso(self.at), "window_s": self.window_s}


@dataclass(frozen=True)
class EgressInbox:
    """The bot's egress requests: those to show, and how many are hidden."""

    ledger: EgressLedger
    pending: tuple[EgressRequest, ...] = ()
    hidden: int = 0
    settled_note: str | None = None  # the dismissals file could not be read

    @property
    def count(self) -> int:
        return len(self.pending)

    @property
    def notes(self) -> list[str]:
        return [n for n in (self.ledger.note, self.settled_note) if n]


@dataclass(frozen=True)
class AllowResult:
    request: EgressRequest
    pattern: str
    applied: ApplyResult
    already: bool = False  # the pattern was on the allowlist already


@dataclass
class _SettledFile:
    entries: dict[str, Settled] = field(default_factory=dict)
    note: str | None = None


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_settled(data: bytes) -> _SettledFile:
    name = "egress-dismissed.json"
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _SettledFile(note=f"{name}: not valid JSON: dismissals ignored")
    if not isinstance(doc, dict) or doc.get("v") != SETTLED_VERSION:
        return _SettledFile(note=f"{name}: not version {SETTLED_VERSION}: dismissals ignored")
    raw = doc.get("settled")
    if not isinstance(raw, dict):
        return _SettledFile(note=f"{name}: settled is not an object: dismissals ignored")
    out: dict[str, Settled] = {}
    for key, value in raw.items():
        try:
            action = value["action"]
            at = datetime.fromisoformat(value["at"]).astimezone(UTC)
            window = float(value.get("window_s", 0.0))
        except (TypeError, KeyError, ValueError, AttributeError):
            continue
        if action in ("dismissed", "allowed") and window >= 0:
            out[key] = Settled(action, at, window)
    return _SettledFile(out)


def _read_settled(home: FleetHome, bot: str) -> _SettledFile:
    path = home.egress_dismissals(bot)
    try:
        data = read_agent_file(path.parent, path.name, MAX_SETTLED_BYTES)
    except FileNotFoundError:
        return _SettledFile()
    except (UnsafeFile, OSError) as exc:
        return _SettledFile(note=f"{path.name}: {exc}: dismissals ignored")
    return _SettledFile() if data is None else _parse_settled(data)


def pending(ledger: EgressLedger, settled: dict[str, Settled]) -> tuple[EgressRequest, ...]:
    """The entries no settlement hides, most recently refused first."""
    shown = [r for r in ledger.requests if not (r.key in settled and settled[r.key].hides(r))]
    return tuple(sorted(shown, key=lambda r: r.last_at, reverse=True))


def read_inbox(home: FleetHome, bot: str) -> EgressInbox:
    """The bot's egress requests (read-only; allowed while it is locked)."""
    ledger = read_ledger(home, bot)
    settled = _read_settled(home, bot)
    shown = pending(ledger, settled.entries)
    return EgressInbox(ledger, shown, len(ledger.requests) - len(shown), settled.note)


@contextlib.contextmanager
def _settling(home: FleetHome, bot: str) -> Iterator[dict[str, Settled]]:
    """The settlements to change, under a lock so that two cftui processes
    never lose each other's; written back (pruned) on exit."""
    make_private_dirs(home.inbox_dir(bot))
    fd = os.open(
        home.inbox_dir(bot) / _LOCK_NAME,
        os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
        PRIVATE_FILE,
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        entries = dict(_read_settled(home, bot).entries)
        yield entries
        _write_settled(home, bot, entries)
    finally:
        os.close(fd)


def _write_settled(home: FleetHome, bot: str, entries: dict[str, Settled]) -> None:
    keys = {r.key for r in read_ledger(home, bot).requests}
    now = _now()
    # A settlement whose key left the ledger and whose window is over can
    # hide nothing any more: any new refusal of it is later than its window.
    kept = {
        k: s for k, s in entries.items() if k in keys or s.at + timedelta(seconds=s.window_s) > now
    }
    newest = sorted(kept.items(), key=lambda kv: kv[1].at, reverse=True)[:MAX_SETTLED]
    doc = {"v": SETTLED_VERSION, "bot": bot, "settled": {k: s.to_json() for k, s in newest}}
    atomic_write_private(home.egress_dismissals(bot), orjson.dumps(doc) + b"\n")


def _request(home: FleetHome, bot: str, key: str) -> EgressRequest:
    ledger = read_ledger(home, bot)
    request = ledger.find(key)
    if request is None:
        known = ", ".join(repr(r.key) for r in ledger.requests[:5]) or "none"
        raise UsageError(
            f"{bot}: no egress request {key[:200]!r} (known: {known}; "
            f"`cftui proposals {bot}` lists them)"
        )
    return request


def allow(home: FleetHome, bot: str, key: str, *, wait: bool = True) -> AllowResult:
    """Add the entry's suggested pattern to the allowlist, live; hide the entry
    until the proxy refuses it again. BotLocked while the bot is locked;
    UsageError for an unknown key, an entry with no suggestion or one that
    is not a pattern."""
    locks.ensure_unlocked(home, bot)
    request = _request(home, bot, key)
    if request.suggest is None:
        raise UsageError(
            f"{bot}: no allowlist entry can admit {key[:200]!r} (the egress proxy suggests "
            "none): dismiss it, or edit the allowlist with `cftui egress`"
        )
    before = set(home.bot(bot).egress_allow)
    result = edit_allowlist(home, bot, add=[request.suggest], wait=wait)
    already = set(result.bot.egress_allow) == before
    # After the proxy confirmed (or was found not running): any refusal of
    # this key from now on is the proxy's answer under the new list.
    with _settling(home, bot) as entries:
        entries[key] = Settled("allowed", _now())
    record_event(
        home,
        "egress-allow",
        bot,
        key=request.key,
        allow=request.suggest,
        count=request.count,
        applied=result.confirmed,
    )
    return AllowResult(request, request.suggest, result, already)


def dismiss(
    home: FleetHome, bot: str, key: str, *, window: timedelta = DEFAULT_WINDOW
) -> tuple[EgressRequest, Settled]:
    """Hide the entry until the proxy refuses it again after `window`."""
    if window < timedelta(0):
        raise UsageError("the dismissal window cannot be negative")
    request = _request(home, bot, key)
    settled = Settled("dismissed", _now(), window.total_seconds())
    with _settling(home, bot) as entries:
        entries[key] = settled
    record_event(
        home,
        "egress-dismiss",
        bot,
        key=request.key,
        count=request.count,
        window_s=settled.window_s,
    )
    return request, settled
