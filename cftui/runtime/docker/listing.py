"""How a fleet's Docker stacks are read: one listing of the engine's cftui
containers (by label), one inspect of each container of the bots asked
about, each service's state from its inspect (`states.service_status`), and
the start's own probe for a service Docker has not health-checked yet.

The one place for it, whichever way the engine is reached:
`DockerRuntime.status` runs these steps on the docker SDK in its thread
pool (any `DOCKER_HOST`, another host's engine over SSH), and `read_status`
runs them on the engine's unix socket with no SDK and no event loop, for
`cftui list` and `cftui status` (`cftui.fleet_view`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cftui.runtime.docker.names import LABEL_BOT, LABEL_SERVICE
from cftui.runtime.docker.states import service_status
from cftui.runtime.status import RUNNING, SERVICES, STARTING, BotStatus

if TYPE_CHECKING:
    from cftui.fleet import BotConfig
    from cftui.runtime.docker.engine_socket import EngineSocket
    from cftui.runtime.docker.health import Opener

_EXIT = re.compile(r"^(?:Exited|Restarting) \((-?\d+)\)")
# Every container any cftui stack made carries its bot's label.
FILTERS = {"label": [LABEL_BOT]}
RUNTIME = "docker"

Found = dict[tuple[str, str], dict[str, Any]]  # (bot, service) -> its inspect


def wanted(summaries: Iterable[dict[str, Any]], bots: Sequence[BotConfig]) -> list[str]:
    """The ids of the listed containers that belong to `bots`."""
    names = {b.name for b in bots}
    return [s["Id"] for s in summaries if (s.get("Labels") or {}).get(LABEL_BOT) in names]


def by_service(infos: Iterable[dict[str, Any] | None]) -> Found:
    """The inspects keyed by their (bot, service) labels; a container gone
    between the listing and its inspect (None) is left out."""
    found: Found = {}
    for attrs in infos:
        if attrs is None:
            continue
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        found[(labels.get(LABEL_BOT, ""), labels.get(LABEL_SERVICE, ""))] = attrs
    return found


def statuses(bots: Sequence[BotConfig], found: Found) -> dict[str, BotStatus]:
    """Each bot's services as their inspects say (missing when absent)."""
    return {
        bot.name: BotStatus(
            bot.name, RUNTIME, {s: service_status(s, found.get((bot.name, s))) for s in SERVICES}
        )
        for bot in bots
    }


def unchecked(bots: Sequence[BotConfig], out: dict[str, BotStatus]) -> list[tuple[BotConfig, str]]:
    """The services Docker has not health-checked yet (its first check comes
    an interval after the start, 10 s in our images): they read `starting`
    though they may answer already."""
    return [
        (bot, svc)
        for bot in bots
        for svc, st in out[bot.name].services.items()
        if st.state == STARTING and st.health == "starting"
    ]


async def probe_unchecked(
    bots: Sequence[BotConfig], out: dict[str, BotStatus], found: Found, opener: Opener | None = None
) -> None:
    """The start said done when a service answered, and the fleet would say
    `running` only at Docker's first check: the start's own probe decides."""
    todo = unchecked(bots, out)
    if not todo:
        return
    import asyncio

    from cftui.runtime.docker.readiness import answering

    answers = await asyncio.gather(
        *(answering(bot, svc, found[(bot.name, svc)], opener) for bot, svc in todo)
    )
    for (bot, svc), ok in zip(todo, answers, strict=True):
        if ok:
            status = out[bot.name]
            services = dict(status.services)
            old = services[svc]
            detail = ", ".join(
                d for d in (old.detail, "answering; Docker's first check is due") if d
            )
            services[svc] = replace(old, state=RUNNING, detail=detail)
            out[bot.name] = replace(status, services=services)


def from_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """What a container's listing entry says of it, in its inspect's shape
    (for `service_status`): the state and the exit code (in `Status`,
    "Exited (137) 2 minutes ago"), the labels and the image. Not what only
    the inspect has: the restarts, the out-of-memory flag, a start's error,
    the start time, the health."""
    code = _EXIT.search(str(summary.get("Status") or ""))
    state = {"Status": summary.get("State", ""), "ExitCode": int(code[1]) if code else None}
    return {
        "State": state,
        "Config": {"Labels": summary.get("Labels") or {}, "Image": summary.get("Image")},
    }


def read_status(
    engine: EngineSocket, bots: Sequence[BotConfig], *, brief: bool = False, probe: bool = True
) -> dict[str, BotStatus]:
    """`DockerRuntime.status` on the engine's socket, blocking: the inspects
    pipelined on one connection, and an event loop only when a service
    waits for its first health check (`probe`; without it, such a service
    reads `starting`, as Docker says, and no probe's timeout is waited on).

    `brief`: for the `cftui list` table, which shows each bot's state and
    its gateway's uptime, nothing of a service that does not run: only the
    running containers are inspected (their start and health), the others
    read from the listing (`from_summary`: their state, with no restarts,
    no error, no out-of-memory flag). A bot's state is the same either way
    (stopped, killed and missing are all `stopped` in it; restarting is
    `starting`); the services' details are not all there."""
    summaries = engine.containers(all=True, filters=FILTERS)
    mine = set(wanted(summaries, bots))
    listed = [s for s in summaries if s["Id"] in mine]
    ids = [s["Id"] for s in listed if not brief or s.get("State") == "running"]
    found = by_service(engine.inspect_containers(ids))
    if brief:  # the inspected ones as their inspect says, the others as listed
        found = {**by_service(from_summary(s) for s in listed), **found}
    out = statuses(bots, found)
    if probe and unchecked(bots, out):
        import asyncio

        asyncio.run(probe_unchecked(bots, out, found))
    return out
