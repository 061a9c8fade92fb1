"""The live local mirror of a remote Docker bot's `audit/<bot>/`.

The bot's proxies write its audit files under the host's root
(`<root>/audit/<bot>/`); the TUI, `cftui traffic`, `decrypt` and the budgets
read the fleet home's `audit/<bot>/` on the operator's machine, whatever the
host. The same mirror as a Lima VM's (`cftui.audit.mirror`) follows them over
the host's one SSH link (`HostLink`): the logs that grow are tailed and
appended line by line, the files the egress and LLM proxies rewrite whole
(counters, refused requests, the money ledger) are copied when they change.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import TYPE_CHECKING

from cfproxies.spendstate import SPEND_NAME

from cftui.audit.mirror import (
    MirrorCounters,
    cancel_all,
    follow_file,
    follow_once,
    pull_whole,
    push_on_change,
    read_whole,
    retrying,
)
from cftui.fleet import EGRESS_CONTROL_NAME, EGRESS_REQUESTS_NAME, EGRESS_STATS_NAME, FleetHome
from cftui.hosts.layout import HostLayout
from cftui.securefs import atomic_write_private

if TYPE_CHECKING:
    import asyncssh

    from cftui.hosts.ssh import HostLink

# Appended by the proxies: followed line by line.
GROWING = ("traffic.jsonl", "traffic.enc.jsonl", "capture.keys")
# Rewritten whole by the proxies: copied when they change, looked at this often.
REWRITTEN = (EGRESS_STATS_NAME, EGRESS_REQUESTS_NAME, SPEND_NAME)
PULL_INTERVAL_S = 0.5


class _HostEnd:
    """The host as the mirror's far side: commands run as the link's user
    (the one that reaches the engine; the host's root is theirs), on a
    connection of the mirror's own, so that its long-lived sessions (one
    tail a file) never take the link's share of sshd's `MaxSessions`."""

    def __init__(self, link: HostLink) -> None:
        self.link = link
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()

    async def connection(self) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                self._conn = await self.link.side_connection()
            return self._conn

    def command(self, line: str) -> str:
        return line

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class HostAuditMirror:
    """Follows one remote bot's audit files until stopped; restarts by
    itself after the host drops out and comes back."""

    def __init__(self, home: FleetHome, link: HostLink, bot: str) -> None:
        self.home = home
        self.link = link
        self.bot = bot
        self.counters = MirrorCounters()
        self._end = _HostEnd(link)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    def start(self) -> None:
        """Begin (again, if it ended); a no-op while it runs."""
        if self.running:
            return
        host, audit = self.link.host, self.home.audit_dir(self.bot)
        audit.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._tasks = [
            asyncio.create_task(
                follow_file(
                    self._end,
                    str(HostLayout.of(host).audit_dir(self.bot) / n),
                    audit / n,
                    self.counters,
                ),
                name=f"host-audit-{self.bot}-{n}",
            )
            for n in GROWING
        ]
        pulled = [(str(HostLayout.of(host).audit_dir(self.bot) / n), audit / n) for n in REWRITTEN]
        self._tasks.append(
            asyncio.create_task(
                retrying(functools.partial(pull_whole, self._end, pulled, PULL_INTERVAL_S)),
                name=f"host-audit-{self.bot}-rewritten",
            )
        )
        self._tasks.append(
            asyncio.create_task(retrying(self._push_control), name=f"host-audit-{self.bot}-control")
        )

    async def _push_control(self) -> None:
        """`cftui capture` and `cftui egress` write the control file here;
        the host's egress proxy reads its copy under the host's root (owned
        by the proxies' user, as the start placed it)."""
        remote = str(HostLayout.of(self.link.host).audit_dir(self.bot) / EGRESS_CONTROL_NAME)

        async def write(text: str) -> None:
            await self.link.write_private(remote, text.encode(), owner=(os.getuid(), os.getgid()))

        await push_on_change(self.home.egress_control(self.bot), write)

    async def catch_up(self) -> None:
        """Bring the mirror up to what the host holds now, once (before the
        host's copy is removed: `cftui delete`, a move): the logs copied to
        their ends, the rewritten files as they are. A file this machine
        already mirrors live (the TUI's) is left to that mirror."""
        host, audit = self.link.host, self.home.audit_dir(self.bot)
        far = HostLayout.of(host).audit_dir(self.bot)
        audit.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in GROWING:
            await follow_once(self._end, str(far / name), audit / name, self.counters, follow=False)
        for name in REWRITTEN:
            data = await read_whole(self._end, str(far / name))
            if data is not None:
                atomic_write_private(audit / name, data)

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []
        self._end.close()
