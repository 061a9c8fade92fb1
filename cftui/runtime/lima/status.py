"""The states of one VM's bots in one SSH round trip: `systemctl list-units`
for every unit of every bot at once, the kill markers and the bots set up,
then `systemctl show` only for the units whose state changed (ShowCache),
as the runtime's BotStatus.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from cftui.fleet import BotConfig
from cftui.runtime.lima.ctl import Instance
from cftui.runtime.lima.plan import CONF_DIR, KILLED_DIR, unit_name
from cftui.runtime.lima.ssh import VMShell
from cftui.runtime.lima.units import SHOW_PROPS, parse_list_units, parse_show, service_status
from cftui.runtime.status import MISSING, SERVICES, STOPPED, BotStatus, ServiceStatus

# How long a unit's start time, read with `systemctl show`, is trusted while its
# state stays the same (bounds a restart missed between two status calls).
SHOW_TTL_S = 30.0


class ShowCache:
    """What `systemctl show` last said of each unit (start time, result), per
    VM: `list-units` is one D-Bus call for every unit, `show` costs one per
    unit (160 ms for 40), so `show` is asked only for units whose state changed."""

    def __init__(self) -> None:
        # (vm, unit) -> (its state then, when, its start time and result)
        self._entries: dict[tuple[str, str], tuple[tuple[str, str], float, dict[str, str]]] = {}

    def forget(self, vm: str) -> None:
        """Drop a VM's entries: a VM seen again may have rebooted."""
        for key in [k for k in self._entries if k[0] == vm]:
            del self._entries[key]

    def fill(
        self,
        vm: str,
        bots: Iterable[str],
        props: dict[str, dict[str, str]],
        setup: set[str],
    ) -> list[str]:
        """Fill `props` (list-units' answer for the bots' units) from the cache
        where the state is unchanged; the units that need a `systemctl show`."""
        now = time.monotonic()
        need = []
        for bot in bots:
            for service in SERVICES:
                unit = unit_name(service, bot)
                p = props.get(unit)
                if p is None:
                    if bot in setup:  # an inactive unit systemd has unloaded
                        props[unit] = {"Id": unit, "LoadState": "loaded",
                                       "ActiveState": "inactive", "SubState": "dead"}  # fmt: skip
                    continue
                cached = self._entries.get((vm, unit))
                state = (p["ActiveState"], p["SubState"])
                if cached and cached[0] == state and now - cached[1] < SHOW_TTL_S:
                    p.update(cached[2])
                else:
                    need.append(unit)
        return need

    def remember(
        self,
        vm: str,
        units: list[str],
        props: dict[str, dict[str, str]],
        shown: dict[str, dict[str, str]],
    ) -> None:
        """Add what `systemctl show` said of `units` to `props`, and keep it."""
        now = time.monotonic()
        for unit in units:
            got = shown.get(unit, {})
            extra = {k: got.get(k, "") for k in ("Result", "ActiveEnterTimestamp")}
            props[unit].update(extra)
            state = (props[unit]["ActiveState"], props[unit]["SubState"])
            self._entries[(vm, unit)] = (state, now, extra)


def vm_down(runtime: str, bots: Sequence[BotConfig], inst: Instance | None) -> dict[str, BotStatus]:
    """The states of the bots of a VM that is absent (`inst` None) or stopped."""
    why = "VM absent" if inst is None else f"VM {inst.status or 'stopped'}"
    state = MISSING if inst is None else STOPPED
    return {
        b.name: BotStatus(
            b.name, runtime, {s: ServiceStatus(s, state, detail=why) for s in SERVICES}
        )
        for b in bots
    }


async def query_states(
    runtime: str, shell: VMShell, bots: Sequence[BotConfig], shows: ShowCache
) -> dict[str, BotStatus]:
    """The bots' states as the running VM's systemd reports them."""
    vm = shell.vm
    units = " ".join(unit_name(s, b.name) for b in bots for s in SERVICES)
    res = await shell.run(
        f"systemctl list-units --all --plain --no-legend --full {units}; "
        f"echo @@killed; ls {KILLED_DIR} 2>/dev/null; echo @@bots; ls {CONF_DIR} 2>/dev/null",
        check=False,
        timeout=10,
        what="status",
        root=False,
    )
    listed, _, rest = res.out.partition("@@killed")
    killed_text, _, setup_text = rest.partition("@@bots")
    props = parse_list_units(listed)
    need = shows.fill(vm, [b.name for b in bots], props, set(setup_text.split()))
    if need:
        shown = await shell.run(
            f"systemctl show --timestamp=unix -p {SHOW_PROPS} {' '.join(need)}",
            check=False,
            timeout=10,
            what="status",
            root=False,
        )
        shows.remember(vm, need, props, parse_show(shown.out))
    killed = set(killed_text.split())
    return {
        b.name: BotStatus(
            b.name,
            runtime,
            {
                s: service_status(s, props.get(unit_name(s, b.name)), b.name in killed)
                for s in SERVICES
            },
        )
        for b in bots
    }
