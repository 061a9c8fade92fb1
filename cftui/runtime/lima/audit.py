"""The audit files of a Lima bot, brought back to the host as they grow.

The proxies write `traffic.jsonl`, `traffic.enc.jsonl` and `capture.keys`
inside the VM; the TUI and `cftui traffic` read `audit/<bot>/` on the host in
both runtimes. Each is mirrored by `cftui.audit.mirror` on the VM's existing
SSH connection (a tail per file from where the host's copy left off, whole
lines appended with one write), as a remote Docker host's are: an appended
record reaches the host in well under a second, with no polling on either side.
"""

from __future__ import annotations

import asyncio
import functools
import shlex

import asyncssh

from cftui.audit.mirror import (
    MirrorCounters,
    cancel_all,
    follow_file,
    pull_whole,
    push_on_change,
    retrying,
)
from cftui.fleet import EGRESS_CONTROL_NAME, EGRESS_REQUESTS_NAME, EGRESS_STATS_NAME, FleetHome
from cftui.runtime.lima.plan import SRV, unix_user
from cftui.runtime.lima.ssh import VMShell

# (file name on the host, its directory under the bot's audit dir in the VM)
AUDIT_FILES = (
    ("traffic.jsonl", "llm"),
    ("traffic.enc.jsonl", "egress"),
    ("capture.keys", "egress"),
)


def vm_audit_path(bot: str, name: str, sub: str) -> str:
    return f"{SRV}/audit/{bot}/{sub}/{name}"


class _VMEnd:
    """The VM as the mirror's far side: its shell's connection, as root."""

    def __init__(self, shell: VMShell) -> None:
        self.shell = shell

    async def connection(self) -> asyncssh.SSHClientConnection:
        return await self.shell.connection()

    def command(self, line: str) -> str:
        return f"sudo -n sh -c {shlex.quote(line)}"


class AuditFollower:
    """Follows one bot's audit files for as long as it runs."""

    def __init__(self, home: FleetHome, shell: VMShell, bot: str) -> None:
        self.home = home
        self.shell = shell
        self.bot = bot
        self._end = _VMEnd(shell)
        self._tasks: list[asyncio.Task] = []
        self.counters = MirrorCounters()

    @property
    def lines_copied(self) -> int:
        return self.counters.lines_copied

    def start(self) -> None:
        if self._tasks and not all(t.done() for t in self._tasks):
            return
        audit = self.home.audit_dir(self.bot)
        self._tasks = [
            asyncio.create_task(
                follow_file(
                    self._end, vm_audit_path(self.bot, name, sub), audit / name, self.counters
                ),
                name=f"lima-audit-{self.bot}-{name}",
            )
            for name, sub in AUDIT_FILES
        ]
        self._tasks.append(asyncio.create_task(retrying(self._push_control)))
        pulled = [
            (
                vm_audit_path(self.bot, EGRESS_STATS_NAME, "egress"),
                self.home.egress_stats(self.bot),
            ),
            (
                vm_audit_path(self.bot, EGRESS_REQUESTS_NAME, "egress"),
                self.home.egress_requests(self.bot),
            ),
        ]
        self._tasks.append(
            asyncio.create_task(retrying(functools.partial(pull_whole, self._end, pulled)))
        )

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    async def _push_control(self) -> None:
        """The egress proxy's control file (capture on/off, allowlist), which
        `cftui capture` writes on the host, into the VM as soon as it changes."""
        vm = vm_audit_path(self.bot, EGRESS_CONTROL_NAME, "egress")
        owner = unix_user("egress", self.bot)

        async def write(text: str) -> None:
            await self.shell.write_file(vm, text, owner=owner)

        await push_on_change(self.home.egress_control(self.bot), write)

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []
