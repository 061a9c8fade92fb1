"""`POST /kill` (CONTRACTS §11): the one kill switch (`cftui.killswitch`),
pressed from anywhere the operator can send an authenticated request.

It can only kill and report: there is no endpoint that unlocks, starts or
promotes. The token is `CF_CONTROLLER_TOKEN`, compared in constant time;
the body is small and strict: `{"bots": [names]}` or `{"all": true}`.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import asdict
from typing import Any

from cftui import killswitch
from cftui.errors import UsageError
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime import Runtimes

MAX_BODY = 16 << 10


def token_ok(token: bytes, authorization: str | None) -> bool:
    """`Authorization: Bearer <token>`, constant-time."""
    if not authorization or not authorization.startswith("Bearer "):
        return False
    given = authorization[len("Bearer ") :].strip().encode("utf-8", "replace")
    return hmac.compare_digest(given, token)


def bots_to_kill(home: FleetHome, body: bytes) -> list[BotConfig]:
    """The bots the body names; UsageError (one line) for anything else."""
    try:
        data = json.loads(body)
    except ValueError:
        raise UsageError('the body must be JSON: {"bots": [...]} or {"all": true}') from None
    if not isinstance(data, dict) or set(data) - {"bots", "all"}:
        raise UsageError('the body must be {"bots": [...]} or {"all": true}')
    if data.get("all") is True and "bots" not in data:
        return list(home.bots().values())
    names = data.get("bots")
    if "all" in data or not isinstance(names, list) or not names:
        raise UsageError('the body must be {"bots": [...]} (a non-empty list) or {"all": true}')
    if not all(isinstance(n, str) for n in names) or len(names) > 1000:
        raise UsageError('"bots" must be a list of bot names')
    return home.resolve_bots(list(dict.fromkeys(names)))


async def kill(home: FleetHome, bots: list[BotConfig], runtimes: Runtimes) -> dict[str, Any]:
    """Kill and lock; the per-bot report as JSON-ready data."""
    result = await killswitch.kill(home, bots, runtimes)
    return {
        "ok": result.ok,
        "seconds": round(result.seconds, 3),
        "bots": {
            r.bot: {**asdict(r), "seconds": round(r.seconds, 3), "summary": r.summary()}
            for r in result.reports
        },
    }
