"""The operator's limits on a bot: tokens per UTC day and requests per minute.

Tokens are counted when a call ends, so calls already in flight when the
budget runs out still finish (the overshoot is at most their usage). A call
whose proxy died before its end was written (a start line with no end in
`traffic.jsonl`) is counted at its start line's `tokens_est` when the next
proxy starts (see `cfproxies.record.estimate_tokens`): a crash does not make a
call free. What counts as today's tokens is `cfproxies.today`'s rule, the one
the operator's reader applies too."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from cfproxies.today import next_midnight, tokens_today


@dataclass(frozen=True)
class Refusal:
    limit: str  # "daily_token_budget" or "rpm"
    resets_at: float  # epoch seconds
    message: str

    def retry_after(self, now: float) -> int:
        return max(1, int(self.resets_at - now + 0.999))


class Budget:
    def __init__(self, daily_tokens: int | None, rpm: int | None) -> None:
        self.daily_tokens = daily_tokens or None
        self.rpm = rpm or None
        self._day_ends = next_midnight(time.time())
        self.used_today = 0
        self._recent: deque[float] = deque()

    def _roll(self, now: float) -> None:
        if now >= self._day_ends:
            self._day_ends, self.used_today = next_midnight(now), 0

    def check(self, now: float | None = None) -> Refusal | None:
        """None if a new call may go; the call then counts against the rpm cap."""
        if self.daily_tokens is None and self.rpm is None:
            return None
        now = time.time() if now is None else now
        self._roll(now)
        if self.daily_tokens is not None and self.used_today >= self.daily_tokens:
            return Refusal(
                "daily_token_budget",
                self._day_ends,
                f"daily token budget of {self.daily_tokens} used up "
                f"({self.used_today} tokens today)",
            )
        if self.rpm is not None:
            while self._recent and self._recent[0] <= now - 60.0:
                self._recent.popleft()
            if len(self._recent) >= self.rpm:
                return Refusal(
                    "rpm",
                    self._recent[0] + 60.0,
                    f"limit of {self.rpm} requests per minute reached",
                )
            self._recent.append(now)
        return None

    def add_tokens(self, tokens: int, now: float | None = None) -> None:
        self._roll(time.time() if now is None else now)
        self.used_today += tokens

    def seed_from_log(self, path: Path, bot: str) -> None:
        """Count today's tokens already in traffic.jsonl, so that a restart
        does not hand the bot a fresh budget: every finished call's usage,
        and each unfinished call's estimate."""
        if self.daily_tokens is None:
            return
        self.used_today += tokens_today(path, bot, self._day_ends - 1)

    def snapshot(self) -> dict:
        return {
            "daily_token_budget": self.daily_tokens,
            "tokens_today": self.used_today,
            "rpm": self.rpm,
        }
