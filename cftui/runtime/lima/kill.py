"""The kill switch in a Lima VM: the kills of one VM's bots that arrive
together are done as one batch (`KillBatches`), whose in-VM steps are two
shell scripts (cut and kill first, one round trip; then the rest) whose
output fills the bots' reports. The scripts and their parsing are pure
functions, unit-tested without a VM.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cftui.errors import CftuiError
from cftui.fleet import BotConfig
from cftui.runtime.base import KillReport
from cftui.runtime.lima.plan import KILLED_DIR, unit_name, unix_user
from cftui.runtime.lima.ssh import VMShell

# How long the first kill of a VM waits for the others of the same call.
BATCH_WINDOW_S = 0.01

COUNT_GATEWAYS = "systemctl list-units --state=active --no-legend --plain 'cf-gateway@*' | wc -l"
_ACTIVE = ("active", "activating", "deactivating", "reloading")


def _q(s: str) -> str:
    return shlex.quote(s)


def kill_scripts(names: list[str]) -> tuple[str, str]:
    """(cut and kill, stop the rest) for these bots: the nftables drop for
    each gateway's user comes before one `systemctl kill` of every gateway."""
    gws = " ".join(unit_name("gateway", n) for n in names)
    others = " ".join(unit_name(s, n) for n in names for s in ("front", "llm-proxy", "egress"))
    cut = "".join(
        f"uid=$(id -u {_q(unix_user('gateway', n))} 2>/dev/null) && "
        f"nft insert rule inet clawfactory out-{n} meta skuid $uid counter drop "
        f"comment '\"cf-killed\"' 2>/dev/null && echo '@cut {n}'; "
        for n in names
    )
    cut_and_kill = (
        f"mkdir -p {KILLED_DIR} && cd {KILLED_DIR} && touch {' '.join(names)}; {cut}"
        f"echo @was; systemctl is-active {gws}; "
        f"systemctl kill -s KILL {gws} 2>/dev/null; systemctl stop {gws} 2>/dev/null; "
        f"echo @now; systemctl is-active {gws}; true"
    )
    stop_rest = (
        f"systemctl stop {others}; echo @rest; systemctl is-active {others}; "
        f'echo "@running $({COUNT_GATEWAYS})"'
    )
    return cut_and_kill, stop_rest


def parse_kill(out: str, names: list[str], reports: dict[str, KillReport], part: str) -> int | None:
    """Fill the reports from the kill scripts' output; for the second part,
    how many gateways of the VM still run."""
    active = _ACTIVE
    section, states = "", {"@was": [], "@now": [], "@rest": []}
    running = None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("@cut "):
            reports[line.split()[1]].network_cut = True
        elif line in states:
            section = line
        elif line.startswith("@running"):
            running = int(line.split()[-1]) if line.split()[-1].isdigit() else None
        elif section:
            states[section].append(line)
    if part == "gateway":
        was, now = states["@was"], states["@now"]
        for i, n in enumerate(names):
            if i < len(now) and now[i] not in active:
                reports[n].gateway_killed = True
                if i < len(was) and was[i] not in active:
                    reports[n].already_gone.append("gateway")
        return None
    rest = states["@rest"]
    i = 0
    for n in names:
        for svc in ("front", "llm-proxy", "egress"):
            if i < len(rest) and rest[i] not in active:
                reports[n].stopped.append(svc)
            i += 1
    return running


@dataclass
class KillBatch:
    """The kills of one VM's bots that arrived together."""

    bots: list[BotConfig] = field(default_factory=list)
    reports: dict[str, KillReport] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class KillBatches:
    """Groups the kills of each VM: the first to arrive waits a moment for the
    others of the same kill switch, then runs them all as one batch."""

    def __init__(self) -> None:
        self._open: dict[str, KillBatch] = {}

    async def join(
        self,
        vm: str,
        bot: BotConfig,
        report: KillReport,
        run: Callable[[str, KillBatch], Awaitable[None]],
    ) -> None:
        """Add one kill to its VM's batch; returns once the batch is done."""
        batch = self._open.get(vm)
        leader = batch is None
        if batch is None:
            batch = self._open[vm] = KillBatch()
        batch.bots.append(bot)
        batch.reports[bot.name] = report
        if not leader:
            await batch.done.wait()
            return
        try:
            await asyncio.sleep(BATCH_WINDOW_S)  # the other kills of this call join
            del self._open[vm]
            await run(vm, batch)
        finally:
            batch.done.set()


async def kill_in_vm(
    shell: VMShell,
    names: list[str],
    reports: dict[str, KillReport],
    timings: dict[str, dict[str, float]],
) -> int | None:
    """Cut and kill every gateway of the batch in one round trip, then stop
    the rest; how many gateways of the VM still run (None: unknown, the
    steps failed and the VM must be stopped)."""
    cut_and_kill, stop_rest = kill_scripts(names)
    try:
        res = await shell.run(cut_and_kill, check=False, timeout=5, what="kill")
        now = time.monotonic()
        for n in names:
            timings[n]["dead"] = now
        parse_kill(res.out, names, reports, "gateway")
        rest = await shell.run(stop_rest, check=False, timeout=6, what="stopping the rest")
        running_after = parse_kill(rest.out, names, reports, "rest")
    except CftuiError as exc:
        for r in reports.values():
            r.errors.append(f"{exc}; stopping the VM")
        return None
    for r in reports.values():
        if running_after is not None and not r.network_cut:
            # The chain is missing only if the bot was never set up here.
            r.errors.append("nftables drop rule not inserted (bot not set up in VM?)")
    return running_after
