"""A remote bot's files on its host (issue #21): placed there at each start
over the host's one SSH link, where its containers mount them
(`cftui.hosts.layout`), and its proposals tree brought home from there.

What goes out. The approved `code/` (the host's copy made the same, but
for the writable paths: those are the gateway's there and are only seeded
on the first start, as Lima does), `state/` and the proposals tree when the
host has none yet (the host's stand once the agent wrote them), a fresh
`audit/<bot>/` with the egress control file, and the two secret files the
services read (0600 in 0700). Never the bot's identity: `snapshot.key` and
the capture identity stay on this machine (the egress proxy gets only the
capture's public recipient).

How. Each tree is a tar stream (`host_trees.pack`: no link followed, plain
files only) unpacked as root into a fresh directory of cftui's own making on
the host, and then either renamed into place (the first time) or copied
over the host's tree with the host's rsync. A copy into a tree the gateway
can write (the proposals) runs as the gateway's user (`setpriv`), so that a
link the agent planted there steers no privilege; `code/` outside its
writable paths and a fresh `state/` the agent cannot have touched. Coming
back, the proposals tree is read on the host as the gateway's user too.
The host needs `tar`, `rsync` and `setpriv` (util-linux).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import tempfile
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from cftui import locks
from cftui.errors import BotLocked, RuntimeOperationError, RuntimeUnavailable
from cftui.fleet import BotConfig
from cftui.hosts.layout import HostLayout
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.proposal_tree import MAX_FILE_BYTES
from cftui.runtime import host_trees
from cftui.runtime.docker.build import StackImages
from cftui.runtime.docker.engine import DockerEngine
from cftui.runtime.gateway_uid import gateway_user

if TYPE_CHECKING:  # asyncssh only when a bot is on another host
    from cftui.hosts.ssh import HostLink, Ran

PLACE_TIMEOUT_S = 600.0
_NEW = ".cftui-new"
_OLD = ".cftui-old"
# What `_facts` reports of a bot's files on its host.
KILLED, HAS_STATE, HAS_PROPOSALS = "killed", "state", "proposals"


def _pack_proposals(max_bytes: int) -> str:
    """The proposals tree read on the host as the gateway's user: every
    entry but the files over `max_bytes` (never read: `oversized_listing`
    names them), links as links; 2 when find or tar could not read
    something, so that the copy here deletes nothing."""
    return f"""
l=$(mktemp) || exit 2
find . -mindepth 1 ! \\( -type f -size +{int(max_bytes)}c \\) -print0 > "$l" 2>/dev/null; f=$?
tar -c -f - --null --no-recursion --hard-dereference --files-from="$l"; t=$?
rm -f -- "$l"
[ $t -eq 0 ] || exit $t
[ $f -eq 0 ] || exit 2
"""


def _q(path: PurePosixPath | str) -> str:
    return shlex.quote(str(path))


def _as_gateway(command: str) -> str:
    """A command run on the host as the gateway's user, with no other group
    (from the directory the caller `cd`-ed to as root: the gateway's user
    need not be able to walk the host's root down to it)."""
    uid, gid = gateway_user()
    return f"setpriv --reuid={uid} --regid={gid} --clear-groups {command}"


class RemotePlacement(DockerEngine):
    """The host side of a remote start (part of `DockerRuntime`)."""

    @property
    def layout(self) -> HostLayout:
        assert self._link is not None
        return HostLayout.of(self._link.host)

    @property
    def link(self) -> HostLink:
        assert self._link is not None
        return self._link

    async def _sh(
        self,
        script: str,
        *,
        what: str,
        stdin: IO[bytes] | bytes | None = None,
        stdout: IO[bytes] | None = None,
        ok: tuple[int, ...] = (0,),
    ) -> Ran:
        ran = await self.link.run(
            f"sh -c {shlex.quote(script)}",
            stdin=stdin,
            stdout=stdout,
            timeout=PLACE_TIMEOUT_S,
            what=what,
        )
        if ran.code not in ok:
            raise RuntimeOperationError(
                f"host {self.link.host.name}: {what} failed: {ran.reason()}"
            )
        return ran

    async def _facts(self, bot: BotConfig) -> set[str]:
        """What the host holds of the bot now (KILLED, HAS_STATE, HAS_PROPOSALS)."""
        lay, name = self.layout, bot.name
        ran = await self._sh(
            f"test -e {_q(lay.kill_marker(name))} && echo {KILLED}; "
            f"test -d {_q(lay.state_dir(name))} && echo {HAS_STATE}; "
            f"test -d {_q(lay.proposals_dir(name))} && echo {HAS_PROPOSALS}; true",
            what="reading the bot's files",
        )
        return set(ran.out.decode(errors="replace").split())

    async def _refuse_if_marked(self, bot: BotConfig) -> set[str]:
        """The host's kill marker holds a start, as the local lock does; a
        login that is not root cannot place the bot's files (one line)."""
        await self.link.require_root(f"running {bot.name} there")
        facts = await self._facts(bot)
        if KILLED in facts:
            raise BotLocked(
                locks.locked_message(bot.name, f"its kill marker on host {self.link.host.name}")
            )
        return facts

    async def _clear_host(self, bot: BotConfig) -> None:
        """Every file of the bot under the host's root removed, its secrets
        first (`cftui delete`, the old host of a move), once its containers
        are gone. The agent wrote some of these trees: `rm -rf` removes a
        link it planted, never what the link points at, and stays on the
        root's file system (`--one-file-system`); a directory on the way that
        is a link is left alone. One line naming what is left, if anything is."""
        lay, name = self.layout, bot.name
        parts = [
            p.relative_to(lay.root)
            for p in (
                lay.secrets_dir(name),
                lay.bot_repo(name),
                lay.proposals_dir(name),
                lay.audit_dir(name),
                lay.kill_marker(name),
            )
        ]
        script = (
            f"[ -d {_q(lay.root)} ] || exit 0; cd -- {_q(lay.root)} || exit 3; rc=0; "
            f"for p in {' '.join(_q(p) for p in parts)}; do "
            "  d=${p%/*}; "
            '  if [ -L "$d" ]; then echo "$d is a link: $p left" >&2; rc=1; continue; fi; '
            '  if [ -e "$p" ] || [ -L "$p" ]; then rm -rf --one-file-system -- "$p" || rc=1; fi; '
            "done; exit $rc"
        )
        await self._sh(script, what=f"removing {name}'s files under {lay.root}")

    def _pending(self, bot: str) -> Path:
        """Set while this machine's proposals tree is newer than the host's."""
        return self.home.bot_repo(bot) / ".host-push-proposals"

    async def _place_on_host(
        self, bot: BotConfig, facts: set[str], progress: Progress = no_progress
    ) -> None:
        """Everything the bot's containers mount, placed on its host."""
        task = f"start {bot.name}"
        progress(ProgressEvent(task, 1, 4, f"placing its files on host {self.link.host.name}"))
        with self.gate(bot, f"placing its files on host {self.link.host.name}"):
            # Independent trees: placed at once, each over a channel of the one link.
            steps = [self._place_secrets_and_audit(bot), self._place_code(bot)]
            if HAS_STATE not in facts:
                steps.append(self._place_fresh(bot, self.home.state_dir(bot.name), "state"))
            if HAS_PROPOSALS not in facts or self._pending(bot.name).exists():
                steps.append(self._send_proposals(bot))
            await asyncio.gather(*steps)

    async def _place_secrets_and_audit(self, bot: BotConfig) -> None:
        """The two secret files (0600, the providers' readable by the
        proxies' user only), the audit directory the proxies write, and the
        egress control file (and scrub rules) they read at start."""
        lay, name, home = self.layout, bot.name, self.home
        puid, pgid = os.getuid(), os.getgid()
        audit = lay.audit_dir(name)
        files = [
            (home.gateway_env(name), lay.gateway_env(name)),
            (home.providers_env(name), lay.providers_env(name)),
        ]
        files += [
            (local, audit / local.name)
            for local in (home.egress_control(name), home.scrub_rules(name))
            if local.is_file()
        ]

        async def put(local: Path, remote: PurePosixPath, owner: tuple[int, int] | None) -> None:
            data = await asyncio.to_thread(local.read_bytes)
            await self.link.write_private(str(remote), data, owner=owner)

        # The proxies' user owns what they read and write; gateway.env stays root's.
        await asyncio.gather(
            *(put(local, remote, None if i == 0 else (puid, pgid))
              for i, (local, remote) in enumerate(files))
        )  # fmt: skip
        await self._sh(
            f"install -d -m 0700 -o {puid} -g {pgid} {_q(audit)}",
            what="handing its audit directory to the proxies",
        )

    async def _place_code(self, bot: BotConfig) -> None:
        """The approved tree: unpacked fresh, then renamed into place the
        first time, or copied over the host's (as root: the gateway writes
        none of it) with its writable paths left as the gateway left them."""
        lay, name = self.layout, bot.name
        uid, gid = gateway_user()
        code, new = lay.code_dir(name), lay.bot_repo(name) / f"code{_NEW}"
        keep = " ".join(
            f"--exclude={shlex.quote('/' + rel.strip('/') + '/')}" for rel in bot.writable_paths
        )
        writable = " ".join(_q(new / rel) for rel in bot.writable_paths)
        script = (
            f"set -eu; umask 022; mkdir -p {_q(lay.bot_repo(name))}; "
            f"rm -rf -- {_q(new)}; mkdir -m 0750 -- {_q(new)}; "
            f"tar -x -f - -C {_q(new)} --no-same-owner --no-same-permissions; "
            f"chown root:{gid} {_q(new)}; chmod 0750 {_q(new)}; "
            f"if [ -d {_q(code)} ] && [ ! -L {_q(code)} ]; then "
            # rsync's -a keeps code/'s own owner and mode from the fresh copy
            f"  rsync -a --delete --no-specials --no-devices {keep} {_q(new)}/ {_q(code)}/; "
            f"  rm -rf -- {_q(new)}; "
            f"else "
            f"  rm -rf -- {_q(code)}; "
            + (f"  chown -R -h {uid}:{gid} -- {writable}; " if writable else "")
            + f"  mv -T -- {_q(new)} {_q(code)}; "
            f"fi"
        )
        archive = await asyncio.to_thread(host_trees.pack, self.home.code_dir(name))
        try:
            await self._sh(script, stdin=archive, what=f"placing {name}'s code/")
        finally:
            archive.close()

    async def _place_fresh(self, bot: BotConfig, src: Path, which: str) -> None:
        """`state/` on a host that has none: unpacked fresh, handed to the
        gateway's user, renamed into place (never over a tree that is there)."""
        lay, name = self.layout, bot.name
        uid, gid = gateway_user()
        dest = lay.state_dir(name)
        new = lay.bot_repo(name) / f"{which}{_NEW}"
        script = (
            f"set -eu; umask 077; mkdir -p {_q(lay.bot_repo(name))}; "
            f"rm -rf -- {_q(new)}; mkdir -m 0700 -- {_q(new)}; "
            f"tar -x -f - -C {_q(new)} --no-same-owner --no-same-permissions; "
            f"chown -R -h {uid}:{gid} -- {_q(new)}; "
            f"if [ -e {_q(dest)} ] || [ -L {_q(dest)} ]; then rm -rf -- {_q(new)}; "
            f"else mv -T -- {_q(new)} {_q(dest)}; fi"
        )
        archive = await asyncio.to_thread(host_trees.pack, src)
        try:
            await self._sh(script, stdin=archive, what=f"placing {name}'s {which}/")
        finally:
            archive.close()

    async def _send_proposals(self, bot: BotConfig) -> None:
        """This machine's proposals tree (a seed, a reject or a promotion)
        made the host's: emptied and unpacked in place (the gateway may be
        running on it: its mount stays), all of it as the gateway's user, in
        the tree that user owns, so a link the agent planted there steers
        no privilege."""
        lay, name = self.layout, bot.name
        uid, gid = gateway_user()
        dest = lay.proposals_dir(name)
        inside = "find . -mindepth 1 -delete && tar -x -f - --no-same-owner --no-same-permissions"
        script = (
            f"set -eu; umask 022; mkdir -p {_q(dest.parent)}; "
            f"if [ -L {_q(dest)} ] || {{ [ -e {_q(dest)} ] && [ ! -d {_q(dest)} ]; }}; then "
            f"rm -f -- {_q(dest)}; fi; "
            f"install -d -m 0755 -o {uid} -g {gid} {_q(dest)}; cd {_q(dest)}; "
            + _as_gateway(f"sh -c {shlex.quote(inside)}")
        )
        archive = await asyncio.to_thread(
            host_trees.pack, self.home.proposals_dir(name), stand_ins_over=MAX_FILE_BYTES
        )
        try:
            await self._sh(script, stdin=archive, what=f"sending {name}'s proposals")
        finally:
            archive.close()
        self._pending(name).unlink(missing_ok=True)

    # --- the proposals mirror (cftui.proposals.mirror) -------------------------
    async def _images_for_host(
        self, bot: BotConfig, progress: Progress, *, nocache: bool = False
    ) -> dict[str, str]:
        """The stack's images built on this machine's engine (its caches, its
        sources) and sent to the host's (`send_image`: save | load over the
        link, skipped for an image id the host holds)."""
        builder = self._local_builder()
        try:
            images = await builder._run(builder._images, bot, progress, nocache=nocache)
        except asyncio.CancelledError:
            builder._abort_build(bot)
            raise
        progress(ProgressEvent(f"start {bot.name}", 0, 4, f"images to host {self.link.host.name}"))
        await builder.send_images(sorted(set(images.values())), self)
        return images

    def _local_builder(self) -> StackImages:
        """This machine's engine, where a remote bot's images are built."""
        raise NotImplementedError  # DockerRuntime's

    async def pull_proposals(self, bot: BotConfig) -> None:
        """The host's proposals tree into this machine's, before it is read:
        read there as the gateway's user, made here of plain files, links
        as links (host_trees.unpack_plain). While cftui's own change waits
        to go out, this machine's copy is the newer: it is sent first. A
        host that never ran the bot changes nothing."""
        if self._link is None:
            return
        facts = await self._facts(bot)
        if HAS_PROPOSALS not in facts:
            return
        if self._pending(bot.name).exists():
            await self._send_proposals(bot)
        dest = self.home.proposals_dir(bot.name)
        src = self.layout.proposals_dir(bot.name)
        from cftui.runtime.lima.sync import oversized_listing, parse_oversized

        listed = await self._sh(
            f"cd {_q(src)} && "
            + _as_gateway(f"sh -c {shlex.quote(oversized_listing('.', MAX_FILE_BYTES))}"),
            what=f"listing {bot.name}'s oversized proposals",
            ok=(0, 1, 2),
        )
        spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - closed below
        try:
            # tar's 2: some file it could not read (the agent's doing): the rest comes.
            what = f"reading {bot.name}'s proposals"
            ran = await self._sh(
                f"cd {_q(src)} && "
                + _as_gateway(f"sh -c {shlex.quote(_pack_proposals(MAX_FILE_BYTES))}"),
                stdout=spool,
                what=what,
                ok=(0, 1, 2),
            )
            if ran.code and not spool.tell():
                raise RuntimeOperationError(
                    f"host {self.link.host.name}: {what} failed: {ran.reason()}"
                )
            spool.seek(0)
            await asyncio.to_thread(
                host_trees.take_home,
                spool,
                dest,
                max_bytes=MAX_FILE_BYTES,
                complete=ran.code == 0,
                oversized=parse_oversized(listed.out),
            )
        finally:
            spool.close()

    async def push_proposals(self, bot: BotConfig) -> None:
        """After a reject or a promotion: this machine's tree to the host's.
        Until it has arrived it is marked the newer (the next start or pull
        sends it)."""
        if self._link is None:
            return
        self._pending(bot.name).touch(mode=0o600)
        try:
            await self._send_proposals(bot)
        except RuntimeUnavailable:
            return  # sent by the next start or pull
