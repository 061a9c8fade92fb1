"""The kill switch's in-VM steps for a batch of bots of one VM: the shell
scripts (cut and kill first, one round trip; then the rest) and the parsing
of what they report. Pure functions, unit-tested without a VM."""

from __future__ import annotations

import shlex

from cftui.runtime.base import KillReport
from cftui.runtime.lima_plan import KILLED_DIR, unit_name, unix_user

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
    # Every process of a gateway's user, in its unit or not: one the agent
    # forked from a process cftui runs as that user (rsync, runuser) lives
    # outside the unit's cgroup. kill(-1) as that user reaches them all in
    # one pass of the kernel, which a fork cannot outrun.
    strays = "".join(
        f"runuser -u {_q(unix_user('gateway', n))} -- kill -KILL -1 2>/dev/null; " for n in names
    )
    cut_and_kill = (
        f"mkdir -p {KILLED_DIR} && cd {KILLED_DIR} && touch {' '.join(names)}; {cut}"
        f"echo @was; systemctl is-active {gws}; "
        f"systemctl kill -s KILL {gws} 2>/dev/null; {strays}systemctl stop {gws} 2>/dev/null; "
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
