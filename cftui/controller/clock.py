"""The controller's sense of time, injectable: schedules and backoffs are
hours and minutes long, and a test cannot wait that long. `ScaledClock`
runs the same code with time going `factor` times faster than the wall."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall time (UTC) and sleeps, as the controller uses them."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock(Clock):
    """Time starting at `start` and running `factor` times faster."""

    def __init__(self, factor: float, start: datetime | None = None) -> None:
        self.factor = factor
        self._start = start or datetime.now(UTC)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._t0) * self.factor
        return self._start + timedelta(seconds=elapsed)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.factor)
