"""`cftui reject`: proposals put back to the approved tree. Refused entries
(a link, a fifo, a setuid file) may be rejected too: rejecting removes them
by name, never through them. Rejecting everything remakes the tree. The
save directory's dependency files (`save_deps`) are proposals too: a reject
puts them back as the approved commit has them, in `code/`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from cftui import locks
from cftui.audit.events import record_event
from cftui.errors import ProposalError, UsageError
from cftui.fleet import FleetHome
from cftui.proposal_tree import seed
from cftui.proposals import mirror, save_deps
from cftui.proposals.scan import scan


async def reject(home: FleetHome, bot: str, paths: Sequence[str] = ()) -> list[str]:
    """Reset the named paths (files, or directories of them) of the
    proposals to the approved tree, or the whole tree when none are named;
    the paths reset ("*" for the whole tree)."""
    async with locks.operation(home, bot, "reject"):
        code = home.code_dir(bot)
        if not paths:
            found = await asyncio.to_thread(scan, home, bot, with_commits=False)
            saved = await asyncio.to_thread(save_deps.pending, code, found)
            # The save directory first: one it refuses (a link) leaves all as it was.
            done = await asyncio.to_thread(save_deps.put_back, code, bot, saved, found.approved)
            head = await asyncio.to_thread(seed.seed, home, bot)
            record_event(home, "reject", bot, paths=["*"], approved=head, save_dir=done)
            await mirror.send_back(home, bot)
            return ["*"]
        found = await asyncio.to_thread(scan, home, bot, with_commits=False)
        if not found.seeded:
            raise ProposalError(f"{bot} has no proposals tree yet: nothing to reject")
        saved = await asyncio.to_thread(save_deps.pending, code, found)
        in_tree_named = {c.path for c in found.changes} | {r.path for r in found.refused}
        named = [*in_tree_named, *saved]
        chosen: list[str] = []
        for raw in paths:
            want = raw.strip("/")
            hits = [p for p in named if p == want or p.startswith(want + "/")]
            if not want or not hits:
                raise UsageError(
                    f"{raw!r} is not a proposal of {bot} (see `cftui proposals {bot}`)"
                )
            chosen += hits
        # A link or file standing where a directory was goes before what it hid.
        chosen = sorted(dict.fromkeys(chosen), key=lambda p: (p.count("/"), p))
        in_save = [p for p in chosen if p in saved]
        in_tree = [p for p in chosen if p in in_tree_named]
        done = await asyncio.to_thread(save_deps.put_back, code, bot, in_save, found.approved)
        if in_tree:
            done += await locks.finish_first(
                asyncio.to_thread(seed.reset_paths, home, bot, in_tree, found.approved)
            )
        record_event(
            home, "reject", bot, paths=done[:200], count=len(done), approved=found.approved
        )
        await mirror.send_back(home, bot)
        return done
