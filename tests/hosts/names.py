"""The names and addresses this pytest process gives its test hosts,
claimed machine-wide for the process's life.

A test host's names are the machine's (a network namespace, a veth, an
address, /tmp/cf-host-<netns>), and `_make_host` first tears down whatever
stands under them: what a killed earlier run left. Two runs of the same
files at once (two worktrees, or a run beside `make test`) would each tear
down the other's host mid-test: a host cut and restored by one run stayed
unreachable, or its veth was gone (`ip link set ... up` exit status 1). So
each process claims its names with an flock first: its usual ones when no
live process holds them, else a spare set. A killed run's lock goes with
it, so its names are free again (and its leftovers cleaned by the next).
"""

from __future__ import annotations

import fcntl
from dataclasses import dataclass
from typing import IO

from tests.parallel import worker_slot

# 10.250.<n>.0/24 for a process whose usual names another holds.
SPARE_SUBNETS = range(40, 100)


@dataclass(frozen=True)
class HostNames:
    """A namespace's suffix (`cfh21a` + suffix) and the /24 its address is in."""

    suffix: str
    subnet: int


_held: tuple[HostNames, IO[str]] | None = None


def _try(names: HostNames) -> IO[str] | None:
    # /tmp as the hosts' own roots are (a TMPDIR of a run's own would not be shared).
    path = f"/tmp/cftui-testhosts-10.250.{names.subnet}.lock"
    fh = open(path, "a+")  # noqa: SIM115 - held open as long as the process runs
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


def host_names() -> HostNames:
    """This process's names: outside xdist "" in 10.250.21, worker N's "wN"
    in 10.250.<100+N>, unless another live process holds them; then the
    first free spare ("pK" in 10.250.<40+K>)."""
    global _held
    if _held is not None:
        return _held[0]
    slot = worker_slot()
    usual = HostNames("", 21) if slot is None else HostNames(f"w{slot}", 100 + slot)
    spares = (HostNames(f"p{n - SPARE_SUBNETS.start}", n) for n in SPARE_SUBNETS)
    for names in (usual, *spares):
        fh = _try(names)
        if fh is not None:
            _held = (names, fh)
            return names
    raise RuntimeError("every test-host subnet is held by another live pytest")
