"""Lifecycle webhooks out (CONTRACTS §11): every operator-configured URL
gets a signed JSON event for each kill, unlock, start, stop, crash, budget
alert, failed snapshot and promotion of the fleet.

The source is `audit/events.jsonl`, followed from the end: whoever did it
(the controller, `cftui kill` in a terminal, the TUI) recorded the event
there, so one mechanism reports them all and the action never waits on a
receiver. Each URL has its own bounded queue and sender task: a receiver
that is down delays no other and nothing else (its oldest events are
dropped past the bound, and said so in the log).

The body is built from a list of known fields only, so no secret (none is
in the log anyway) and no prompt (never there) can ride along. Signature:
`X-ClawFactory-Signature: sha256=<hex HMAC-SHA256 of "<ts>.<body>">` with
`CF_NOTIFY_SECRET`, `<ts>` being `X-ClawFactory-Timestamp` (Unix seconds),
so a receiver can refuse a replay outside its window.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp

from cftui.fleet import FleetHome

log = logging.getLogger("cftui.serve")

TIMESTAMP_HEADER = "X-ClawFactory-Timestamp"
SIGNATURE_HEADER = "X-ClawFactory-Signature"
POLL_S = 0.1
QUEUE_BOUND = 1000
ATTEMPTS = 6
BACKOFF_S = 0.5  # doubled each retry: 0.5, 1, 2, 4, 8 s
TIMEOUT_S = 5.0
_MAX_LINE = 1 << 20
# The events.jsonl actions that are lifecycle events, by the kind sent.
_KINDS = {
    "kill": "kill",
    "unlock": "unlock",
    "start": "start",
    "stop": "stop",
    "restart": "start",
    "crash": "crash",
    "budget": "budget",
    "spend_threshold": "budget",  # what cftui.spend (issue 19) records
    "promote": "promote",
    "proposal": "proposal_waiting",
}
# Fields copied from an event into the body; anything else stays behind.
_FIELDS = (
    "ok", "bots", "seconds", "reports", "commit", "before", "count", "source", "name",
    "error", "attempt", "gave_up", "next_restart_s", "state", "percent", "period",
    "by", "via", "cancelled", "pending", "spent_usd", "budget_usd", "period_key", "reason",
)  # fmt: skip


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>")."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def _scrubbed(value: Any) -> Any:
    """A value with any `scheme://user:token@` credentials masked: a git
    error may quote a remote URL that carries one."""
    if isinstance(value, str):
        return _USERINFO.sub(r"\1***@", value)
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    return value


def event_for(record: dict[str, Any]) -> dict[str, Any] | None:
    """The outgoing event for one events.jsonl record, or None if it is not
    a lifecycle event."""
    action = record.get("action")
    kind = _KINDS.get(action) if isinstance(action, str) else None
    if action == "snapshot" and record.get("ok") is False:
        kind = "snapshot_failed"
    if kind is None:
        return None
    if action == "promote" and record.get("ok") is False:
        kind = "promote_failed"
    out: dict[str, Any] = {"event": kind, "ts": record.get("ts"), "bot": record.get("bot")}
    if kind != action:
        out["action"] = action
    for key in _FIELDS:
        if key in record:
            out[key] = _scrubbed(record[key])
    return out


class EventFollower:
    """New complete lines of `audit/events.jsonl`, from where it ended when
    the follower started. A line still being written waits for its newline;
    a log that shrank (rotated) is read again from its start."""

    def __init__(self, home: FleetHome) -> None:
        self.path = home.events_log
        try:
            self.offset = os.stat(self.path).st_size
        except FileNotFoundError:
            self.offset = 0
        self._partial = b""

    def read_new(self) -> list[dict[str, Any]]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return []
        try:
            size = os.fstat(fd).st_size
            if size < self.offset:
                self.offset, self._partial = 0, b""
            chunk = os.pread(fd, max(0, min(size - self.offset, 16 << 20)), self.offset)
        finally:
            os.close(fd)
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > _MAX_LINE:
            self._partial = b""
        out = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out


class Notifier:
    """Sends events to URLs; `publish` never waits."""

    def __init__(
        self,
        urls: Iterable[str],
        secret: bytes,
        *,
        backoff_s: float = BACKOFF_S,
        attempts: int = ATTEMPTS,
        on_result: Callable[[str, dict[str, Any], str], None] = lambda u, e, r: None,
    ) -> None:
        self.urls = tuple(dict.fromkeys(urls))
        self._secret = secret
        self.backoff_s = backoff_s
        self.attempts = attempts
        self.on_result = on_result
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {
            u: asyncio.Queue(QUEUE_BOUND) for u in self.urls
        }
        self._tasks: list[asyncio.Task] = []
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        self._tasks = [
            asyncio.create_task(self._sender(u), name=f"cf-notify-{i}")
            for i, u in enumerate(self.urls)
        ]

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._session is not None:
            await self._session.close()

    def publish(self, event: dict[str, Any]) -> None:
        for url, q in self._queues.items():
            if q.full():
                dropped = q.get_nowait()
                log.warning("notify %s: queue full, dropped a %s event", url, dropped["event"])
            q.put_nowait(event)

    def signed(self, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: ts,
            SIGNATURE_HEADER: sign(self._secret, ts, body),
            "User-Agent": "cftui-controller",
        }
        return body, headers

    async def _sender(self, url: str) -> None:
        q = self._queues[url]
        while True:
            event = await q.get()
            await self._deliver(url, event)

    async def _deliver(self, url: str, event: dict[str, Any]) -> None:
        assert self._session is not None
        delay = self.backoff_s
        last = ""
        for attempt in range(1, self.attempts + 1):
            body, headers = self.signed(event)  # a fresh timestamp each try
            try:
                async with self._session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status < 300:
                        self.on_result(url, event, "delivered")
                        return
                    last = f"HTTP {resp.status}"
                    if 400 <= resp.status < 500 and resp.status not in (408, 429):
                        break  # the receiver refuses it: retrying will not help
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                last = type(exc).__name__
            if attempt < self.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        log.warning("notify %s: %s event not delivered (%s)", url, event["event"], last)
        self.on_result(url, event, f"failed: {last}")


async def follow(follower: EventFollower, notifier: Notifier, poll_s: float = POLL_S) -> None:
    """Forever: publish each new lifecycle event of the log."""
    while True:
        for record in await asyncio.to_thread(follower.read_new):
            event = event_for(record)
            if event is not None:
                notifier.publish(event)
        await asyncio.sleep(poll_s)
