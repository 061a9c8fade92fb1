"""How `make test` spreads the suite over pytest-xdist workers
(`-n N --dist loadgroup`), and the names a test derives from its worker.

A work unit is a whole test file, so that a module-scoped fixture (a started
stack, a test host) is made once, on one worker. Files that share something
of the machine's that has one name (the demo's `cf-demo` and `demo-*` bots,
the Lima stand-in VM a session shares) carry one `xdist_group` mark
(`GROUPS` below, or `pytestmark = pytest.mark.xdist_group("name")` in a
file): the whole group is one unit, run on one worker one file after
another, in the order of the collection. Units go out heaviest first
(`HEAVY_FIRST`), so that no long file starts last and runs alone.

Everything else a test makes carries a name of its own (a random suffix, as
tests/runtime_docker/helpers.py's `World` does), or one derived from its
worker with `worker_slot()` (the test hosts' namespaces and addresses).
"""

from __future__ import annotations

import os
from typing import Any

# Directories or files whose tests form one group: the prefix of a test's
# path (from the repository's root) gives its group.
GROUPS = {
    # One stand-in VM per session (tests/lima/conftest.py `shared_vm`):
    # one worker boots it once and runs every Lima test in it.
    "tests/lima/": "lima",
    # The demo's fixed names (cftui/demo.py: `cf-demo`, `cf-fake-llm`,
    # `demo-ada`, `demo-bob`) and its machine-wide provider lock.
    "tests/tui/test_demo_e2e_tmux.py": "demo",
    "tests/runtime_docker/test_demo_egress.py": "demo",
    "tests/foundation/test_demo_provider_lock.py": "demo",
    # `service_images` (tests/images/conftest.py) checks every service image
    # once a session: once, not on each worker (90 s each under load).
    "tests/images/": "images",
}

# Units that take longest, heaviest first (from a clean clone's serial
# `--durations=0`, on a loaded machine: Lima 400 s, each file here 100-240 s,
# then the directories by their sum); a unit matching none goes after them,
# in collection order.
HEAVY_FIRST = (
    "lima",
    "tests/runtime_docker/test_deps_install.py",
    "tests/runtime_docker/test_rebuild.py",
    "tests/runtime_docker/test_kill_inflight.py",
    "tests/tui/test_proposals_tab.py",
    "tests/runtime_docker/test_stack.py",
    "tests/runtime_docker/test_snapshot_freeze.py",
    "tests/hosts/test_remote_start.py",
    "tests/runtime_docker/test_spend_stop.py",
    "tests/hosts/test_remote_engine.py",
    "tests/runtime_docker/test_proposals_stack.py",
    "demo",
    "images",
    "tests/runtime_docker/",
    "tests/hosts/",
    "tests/containment/",
    "tests/tui/",
    "tests/egress/",
    "tests/proposals/",
    "tests/audit/",
)


def worker_slot() -> int | None:
    """This process's xdist worker number (`gw3` -> 3), None outside xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else None


def group_of(path: str) -> str | None:
    for prefix, group in GROUPS.items():
        if path.startswith(prefix):
            return group
    return None


def _rank(scope: str) -> int:
    for i, prefix in enumerate(HEAVY_FIRST):
        if scope == prefix or (prefix.endswith("/") and scope.startswith(prefix)):
            return i
    return len(HEAVY_FIRST)


def make_scheduler(config: Any, log: Any) -> Any:
    """`--dist loadgroup` with a file, not a test, as the unit of the
    ungrouped tests, and the heaviest unit handed out first."""
    from xdist.scheduler import LoadGroupScheduling  # only where xdist runs

    class FileGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.rfind("@") > nodeid.rfind("]"):  # xdist appends `@group`
                return nodeid.rsplit("@", 1)[-1]
            return nodeid.split("::", 1)[0]

        def _assign_work_unit(self, node: Any) -> None:
            # min: the first of the heaviest rank, so collection order within it.
            scope = min(self.workqueue, key=_rank)
            self.workqueue.move_to_end(scope, last=False)
            super()._assign_work_unit(node)

    return FileGroupScheduling(config, log)
