"""The states of one VM's bots in one SSH round trip: `systemctl list-units`
for every unit of every bot at once, the kill markers and the bots set up,
then `systemctl show` only for the units whose state changed (lima.units'
ShowCache), as the runtime's BotStatus.
"""

from __future__ import annotations

from collections.abc import Sequence

from cftui.fleet import BotConfig
from cftui.runtime.base import MISSING, SERVICES, STOPPED, BotStatus, ServiceStatus
from cftui.runtime.lima.ctl import Instance
from cftui.runtime.lima.plan import CONF_DIR, KILLED_DIR, unit_name
from cftui.runtime.lima.ssh import VMShell
from cftui.runtime.lima.units import (
    SHOW_PROPS,
    ShowCache,
    parse_list_units,
    parse_show,
    service_status,
)


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
