"""Helpers of the TUI tests: deterministic traffic records, a frozen clock,
and a poll-with-timeout for UI conditions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from cfproxies.record import new_record

from tests.fakes.memory_runtime import STARTED

NOW = STARTED + timedelta(hours=1, minutes=2, seconds=3)
BOTS = ("alpha", "beta")


def frozen_clock() -> datetime:
    return NOW


def make_record(n: int, bot: str = "alpha", **over: object) -> dict:
    """A deterministic traffic record (fixed id and time)."""
    providers = ("anthropic", "openai", "gemini")
    rec = new_record(
        bot=bot,
        provider=providers[n % 3],
        method="POST",
        path="/v1/messages",
        epoch=STARTED.timestamp() + 60 + n * 7.25,
    )
    rec.update(
        id=f"call-{n:06d}",
        model=("claude-sonnet-4-5", "gpt-4o-mini", "gemini-2.5-flash")[n % 3],
        status=529 if n % 10 == 9 else 200,
        stream=n % 2 == 0,
        ttfb_ms=200.0 + n,
        duration_ms=1500.0 + 10 * n,
        tokens_in=1000 + n,
        tokens_out=100 + n,
        request={"model": "claude", "messages": [{"role": "user", "content": f"question {n}"}]},
        response={"text": f"answer {n}", "stop_reason": "end_turn"},
        error="upstream overloaded" if n % 10 == 9 else None,
    )
    rec.update(over)
    return rec


def append_records(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        for rec in records:
            f.write(json.dumps(rec).encode() + b"\n")


async def wait_until(
    pilot,
    predicate: Callable[[], object],
    timeout: float = 5.0,
    what: Callable[[], str] | None = None,
) -> None:
    """Poll the UI until `predicate` holds (never a fixed sleep); `what`
    says, on failure, what the UI showed instead."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            shown = f": {what()}" if what is not None else ""
            raise AssertionError(f"UI condition not met in {timeout:.0f} s{shown}")
        await pilot.pause(0.02)


def notified(app, text: str) -> bool:
    """Whether a notification holding `text` has been shown."""
    return any(text in n.message for n in app._notifications)


def on_bot_screen(app) -> bool:
    """Whether a bot's screen is up and mounted (`--open`'s is pushed after
    the fleet's first frame, so it can be the screen before it has mounted)."""
    from cftui.tui.bot_screen import BotScreen

    return isinstance(app.screen, BotScreen) and app.screen.is_mounted
