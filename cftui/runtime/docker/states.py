"""Docker's words for a container's state, turned into the runtime's
(`cftui.runtime.base`): from an inspect result, and from an event of the
events stream. Pure, so both are tested without an engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cftui.runtime.docker.names import LABEL_BOT, LABEL_SERVICE
from cftui.runtime.status import (
    KILLED,
    MISSING,
    RESTARTING,
    RUNNING,
    STARTING,
    STOPPED,
    UNHEALTHY,
    ServiceStatus,
    StateChange,
)

SIGKILL_EXIT = 137


def parse_docker_time(text: str | None) -> datetime | None:
    """Docker's RFC 3339 with nanoseconds; None for its zero time."""
    if not text or text.startswith("0001-"):
        return None
    head, _, frac = text.rstrip("Z").partition(".")
    frac = "".join(c for c in frac if c.isdigit())[:6]
    try:
        base = datetime.fromisoformat(head)
    except ValueError:
        return None
    micro = int(frac.ljust(6, "0")) if frac else 0
    return base.replace(microsecond=micro, tzinfo=UTC)


def service_status(service: str, attrs: dict[str, Any] | None) -> ServiceStatus:
    """A ServiceStatus from `docker inspect` output (None: no such container)."""
    if attrs is None:
        return ServiceStatus(service, MISSING)
    st = attrs.get("State") or {}
    status = st.get("Status", "")
    health = (st.get("Health") or {}).get("Status")
    restarts = int(attrs.get("RestartCount") or 0)
    exit_code = st.get("ExitCode")
    details = []
    if status == "running":
        state = {"starting": STARTING, "unhealthy": UNHEALTHY}.get(health or "", RUNNING)
    elif status == "restarting":
        state = RESTARTING
        details.append(f"crash-looping, last exit {exit_code}")
    elif status in ("exited", "dead"):
        state = KILLED if exit_code == SIGKILL_EXIT and not st.get("OOMKilled") else STOPPED
        details.append(f"exit {exit_code}")
    elif status == "paused":
        state = STOPPED
        details.append("paused")
    else:  # created, removing
        state = STOPPED
    if st.get("OOMKilled"):
        details.append("out of memory")
    if restarts:
        details.append(f"{restarts} restart{'s' if restarts != 1 else ''}")
    if st.get("Error"):
        details.append(str(st["Error"]))
    image = (attrs.get("Config") or {}).get("Image")
    return ServiceStatus(
        service,
        state,
        health=health if status == "running" else None,  # Docker keeps a stale one
        started_at=parse_docker_time(st.get("StartedAt")) if status == "running" else None,
        image=image,
        detail=", ".join(details),
    )


def event_change(event: dict[str, Any]) -> StateChange | None:
    """The state change a container event means, or None if it means none."""
    if event.get("Type", "container") != "container":
        return None
    attrs = (event.get("Actor") or {}).get("Attributes") or {}
    bot = attrs.get(LABEL_BOT)
    service = attrs.get(LABEL_SERVICE)
    if not bot or not service:
        return None
    action = str(event.get("Action") or event.get("status") or "")
    nanos = event.get("timeNano")
    if isinstance(nanos, int):  # exact: a float would round the microseconds
        secs, rest = divmod(nanos, 1_000_000_000)
        ts = datetime.fromtimestamp(secs, UTC) + timedelta(microseconds=rest // 1000)
    else:
        ts = datetime.fromtimestamp(float(event.get("time") or 0), UTC)
    if action.startswith("health_status"):
        health = action.partition(":")[2].strip()
        state = {"healthy": RUNNING, "unhealthy": UNHEALTHY}.get(health, STARTING)
        return StateChange(bot, service, state, ts, health)
    if action == "die":
        code = attrs.get("exitCode", "")
        state = KILLED if code == str(SIGKILL_EXIT) else STOPPED
        return StateChange(bot, service, state, ts, f"exit {code}")
    simple = {
        "start": (RUNNING, "started"),
        "restart": (RUNNING, "restarted"),
        "unpause": (RUNNING, "unpaused"),
        "stop": (STOPPED, "stopped"),
        "pause": (STOPPED, "paused"),
        "create": (STOPPED, "created"),
        "destroy": (MISSING, "removed"),
        "oom": (UNHEALTHY, "out of memory"),
    }
    if action in simple:
        state, detail = simple[action]
        return StateChange(bot, service, state, ts, detail)
    return None
