"""The audit files of a Lima bot, brought back to the host as they grow.

The proxies write `traffic.jsonl`, `traffic.enc.jsonl` and `capture.keys`
inside the VM; the TUI and `cftui traffic` read `audit/<bot>/` on the host in
both runtimes. One `tail -F` per file runs on the VM's existing SSH
connection, starting at the host copy's size, and every complete line is
appended on the host with a single write (cfproxies.jsonl), so a reader
never sees half a record: an appended record reaches the host in well
under a second, with no polling on either side.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shlex
from pathlib import Path

from cfproxies.jsonl import append_bytes, open_append
from watchfiles import awatch

from cftui.fleet import EGRESS_CONTROL_NAME, EGRESS_REQUESTS_NAME, EGRESS_STATS_NAME, FleetHome
from cftui.runtime.lima.plan import SRV, unix_user
from cftui.runtime.lima.ssh import VMShell
from cftui.securefs import atomic_write_private

# (file name on the host, its directory under the bot's audit dir in the VM)
AUDIT_FILES = (
    ("traffic.jsonl", "llm"),
    ("traffic.enc.jsonl", "egress"),
    ("capture.keys", "egress"),
)


def vm_audit_path(bot: str, name: str, sub: str) -> str:
    return f"{SRV}/audit/{bot}/{sub}/{name}"


class AuditFollower:
    """Follows one bot's audit files for as long as it runs."""

    def __init__(self, home: FleetHome, shell: VMShell, bot: str) -> None:
        self.home = home
        self.shell = shell
        self.bot = bot
        self._tasks: list[asyncio.Task] = []
        self.lines_copied = 0

    def start(self) -> None:
        if self._tasks and not all(t.done() for t in self._tasks):
            return
        self._tasks = [
            asyncio.create_task(self._follow(name, sub), name=f"lima-audit-{self.bot}-{name}")
            for name, sub in AUDIT_FILES
        ]
        self._tasks.append(asyncio.create_task(self._retry(self._push_control)))
        for name, dest in (
            (EGRESS_STATS_NAME, self.home.egress_stats(self.bot)),
            (EGRESS_REQUESTS_NAME, self.home.egress_requests(self.bot)),
        ):
            self._tasks.append(
                asyncio.create_task(self._retry(lambda n=name, d=dest: self._pull(n, d)))
            )

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    async def _follow(self, name: str, sub: str) -> None:
        host_path = self.home.audit_dir(self.bot) / name
        host_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        while True:
            try:
                await self._copy(host_path, vm_audit_path(self.bot, name, sub))
            except asyncio.CancelledError:
                raise
            except Exception:  # the VM went away or the connection dropped: retry
                await asyncio.sleep(1.0)
            else:
                await asyncio.sleep(1.0)

    async def _copy(self, host_path: Path, vm_path: str) -> None:
        fd = open_append(host_path)
        try:
            offset = os.fstat(fd).st_size
            # inotify where the VM's file system has it, else a 0.1 s stat loop.
            command = f"exec tail -q -s 0.1 -c +{offset + 1} -F {shlex.quote(vm_path)} 2>/dev/null"
            conn = await self.shell.connection()
            proc = await conn.create_process(f"sudo -n sh -c {shlex.quote(command)}", encoding=None)
            try:
                pending = b""
                while True:
                    chunk = await proc.stdout.read(65536)
                    if not chunk:
                        break
                    pending += chunk
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        append_bytes(fd, line + b"\n")
                        self.lines_copied += 1
            finally:
                proc.close()
        finally:
            os.close(fd)

    async def _retry(self, step) -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:  # the VM went away or the connection dropped
                pass
            await asyncio.sleep(1.0)

    async def _push_control(self) -> None:
        """The egress proxy's control file (capture on/off, allowlist), which
        `cftui capture` writes on the host, into the VM as soon as it changes."""
        host = self.home.egress_control(self.bot)
        vm = vm_audit_path(self.bot, EGRESS_CONTROL_NAME, "egress")
        owner = unix_user("egress", self.bot)
        last: str | None = None

        async def push() -> None:
            nonlocal last
            try:
                text = host.read_text(encoding="utf-8")
            except FileNotFoundError:
                return
            if text != last:
                await self.shell.write_file(vm, text, owner=owner)
                last = text

        await push()
        async for _changes in awatch(
            host.parent,
            watch_filter=lambda _change, path: path.endswith(EGRESS_CONTROL_NAME),
            debounce=20,
            step=10,
        ):
            await push()

    async def _pull(self, name: str, dest: Path) -> None:
        """A file the egress proxy rewrites whole (its stats, which `cftui
        capture` reads to confirm a change; its ledger of refused requests)
        back to the host whenever its content changes in the VM."""
        vm = shlex.quote(vm_audit_path(self.bot, name, "egress"))
        loop = (
            f"prev=; while :; do cur=$(cksum < {vm} 2>/dev/null); "
            f'if [ -n "$cur" ] && [ "$cur" != "$prev" ]; then prev=$cur; '
            f'echo "$(base64 -w0 < {vm})"; fi; sleep 0.1; done'
        )
        async for line in self.shell.lines(loop):
            with contextlib.suppress(ValueError):
                atomic_write_private(dest, base64.b64decode(line))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
