"""The live local mirror of the remote Docker bots' `audit/<bot>/`, one
mirror per host for all its bots.

The bots' proxies write their audit files under the host's root
(`<root>/audit/<bot>/`); the TUI, `cftui traffic`, `decrypt` and the budgets
read the fleet home's `audit/<bot>/` on the operator's machine, whatever the
host. `cftui.audit.mirror_many` follows them all over one connection of the
mirror's own to the host, in two sessions (a watch loop and a reader),
however many bots the host runs: the logs that grow are appended line by
line, the files the egress and LLM proxies rewrite whole (counters, refused
requests, the money ledger) are copied when they change. The egress control
file goes the other way, pushed to the host when the operator changes it.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from cfproxies.spendstate import SPEND_NAME

from cftui.audit.mirror import (
    MirrorCounters,
    cancel_all,
    follow_once,
    push_on_change,
    read_whole,
    retrying,
)
from cftui.audit.mirror_many import ManyFilesMirror
from cftui.fleet import EGRESS_CONTROL_NAME, EGRESS_REQUESTS_NAME, EGRESS_STATS_NAME, FleetHome
from cftui.hosts.layout import HostLayout
from cftui.securefs import atomic_write_private

if TYPE_CHECKING:
    import asyncssh

    from cftui.hosts.ssh import HostLink

# Appended by the proxies: followed line by line.
GROWING = ("traffic.jsonl", "traffic.enc.jsonl", "capture.keys")
# Rewritten whole by the proxies: copied when they change.
REWRITTEN = (EGRESS_STATS_NAME, EGRESS_REQUESTS_NAME, SPEND_NAME)


class _HostEnd:
    """The host as the mirror's far side: commands run as the link's user
    (the one that reaches the engine; the host's root is theirs), on one
    connection of the mirror's own for all the host's bots, so that its two
    long-lived sessions never take the link's share of sshd's `MaxSessions`,
    and so that a host of many bots sees one connection, not one a bot
    (sshd's `MaxStartups` drops connections beyond ten being set up at once)."""

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
    """Follows the audit files of the host's bots named by `follow`, until
    stopped; restarts by itself after the host drops out and comes back."""

    def __init__(self, home: FleetHome, link: HostLink) -> None:
        self.home = home
        self.link = link
        self.counters: dict[str, MirrorCounters] = {}  # a bot's, for tests and benchmarks
        self._end = _HostEnd(link)
        self._files = ManyFilesMirror(self._end)
        self._control: dict[str, asyncio.Task[None]] = {}

    @property
    def rounds(self) -> int:
        """The sessions begun on the host so far (one pair a round)."""
        return self._files.rounds

    def running(self, bot: str) -> bool:
        return bot in self.counters and self._files.running

    def _far(self, bot: str, name: str) -> str:
        """The host's copy of one of the bot's audit files."""
        return str(HostLayout.of(self.link.host).audit_dir(bot) / name)

    def follow(self, bot: str) -> None:
        """Mirror `bot`'s audit (again, if the mirror ended); a no-op while it runs."""
        audit = self.home.audit_dir(bot)
        audit.mkdir(parents=True, exist_ok=True, mode=0o700)
        counters = self.counters.setdefault(bot, MirrorCounters())
        for name in GROWING:
            self._files.follow(self._far(bot, name), audit / name, counters)
        for name in REWRITTEN:
            self._files.copy_whole(self._far(bot, name), audit / name)
        self._files.start()
        task = self._control.get(bot)
        if task is None or task.done():
            self._control[bot] = asyncio.create_task(
                retrying(lambda: self._push_control(bot)), name=f"host-audit-{bot}-control"
            )

    def unfollow(self, bot: str) -> None:
        """Stop mirroring `bot`'s audit from this host (it moved to another,
        or is gone), its control file no longer pushed here."""
        for name in (*GROWING, *REWRITTEN):
            self._files.unfollow(self._far(bot, name))
        task = self._control.pop(bot, None)
        if task is not None:
            task.cancel()
        self.counters.pop(bot, None)

    async def _push_control(self, bot: str) -> None:
        """`cftui capture` and `cftui egress` write the control file here;
        the host's egress proxy reads its copy under the host's root (owned
        by the proxies' user, as the start placed it)."""
        remote = str(HostLayout.of(self.link.host).audit_dir(bot) / EGRESS_CONTROL_NAME)

        async def write(text: str) -> None:
            await self.link.write_private(remote, text.encode(), owner=(os.getuid(), os.getgid()))

        await push_on_change(self.home.egress_control(bot), write)

    async def catch_up(self, bot: str) -> None:
        """Bring `bot`'s mirror up to what the host holds now, once (before
        the host's copy is removed: `cftui delete`, a move): the logs copied
        to their ends, the rewritten files as they are. A file this machine
        already mirrors live (the TUI's) is left to that mirror."""
        far = HostLayout.of(self.link.host).audit_dir(bot)
        audit = self.home.audit_dir(bot)
        audit.mkdir(parents=True, exist_ok=True, mode=0o700)
        counters = self.counters.setdefault(bot, MirrorCounters())
        for name in GROWING:
            await follow_once(self._end, str(far / name), audit / name, counters, follow=False)
        for name in REWRITTEN:
            data = await read_whole(self._end, str(far / name))
            if data is not None:  # up to 8 MiB: off the event loop, as the live copy is
                await asyncio.to_thread(atomic_write_private, audit / name, data)

    async def stop(self) -> None:
        control, self._control = list(self._control.values()), {}
        await cancel_all(control)
        await self._files.stop()
        self._end.close()
