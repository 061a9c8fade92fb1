"""What a runtime reports of a bot's stack: its services, each one's state,
the bot's state in one word, and the changes as they happen.

Apart from the runtime interface (`cftui.runtime.base`) so that a command
that only reads states (`cftui list`, `fleet_view.read_now`) loads no more
than these classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cftui.botdisk import DiskStatus

SERVICES = ("front", "gateway", "llm-proxy", "egress")

# Service states, as every runtime reports them.
RUNNING = "running"
STARTING = "starting"
UNHEALTHY = "unhealthy"
STOPPED = "stopped"
KILLED = "killed"
RESTARTING = "restarting"
MISSING = "missing"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class ServiceStatus:
    """One service of a bot's stack."""

    service: str
    state: str = MISSING
    health: str | None = None
    started_at: datetime | None = None
    image: str | None = None
    detail: str = ""

    @property
    def up(self) -> bool:
        """Whether its process runs (healthy or not yet, or not)."""
        return self.state in (RUNNING, STARTING, UNHEALTHY)

    def uptime_seconds(self, now: datetime | None = None) -> float | None:
        if not self.up or self.started_at is None:
            return None
        return ((now or datetime.now(UTC)) - self.started_at).total_seconds()


@dataclass(frozen=True)
class BotStatus:
    """A bot's stack as the runtime sees it."""

    bot: str
    runtime: str
    services: dict[str, ServiceStatus] = field(default_factory=dict)
    locked: bool = False
    error: str | None = None
    disk: DiskStatus | None = None  # filled by lifecycle.fleet_status (botdisk)

    @property
    def state(self) -> str:
        """One word for the fleet table: running, partial, stopped, locked..."""
        if self.error:
            return UNKNOWN
        states = [s.state for s in self.services.values()]
        if self.locked:
            return "locked"
        if not states or all(s == MISSING for s in states):
            return "absent"
        if all(s == RUNNING for s in states):
            return RUNNING
        if any(s in (STARTING, RESTARTING) for s in states):
            return STARTING
        if any(s == UNHEALTHY for s in states):
            return UNHEALTHY
        if all(s in (STOPPED, KILLED, MISSING) for s in states):
            return STOPPED
        return "partial"

    def uptime_seconds(self) -> float | None:
        gw = self.services.get("gateway")
        return gw.uptime_seconds() if gw else None


@dataclass(frozen=True)
class StateChange:
    """A service changed state; what `Runtime.events` yields."""

    bot: str
    service: str
    state: str
    ts: datetime
    detail: str = ""
