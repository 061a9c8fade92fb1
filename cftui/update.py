"""`cftui update BOT`: bring the gateway source in `code/` up to its upstream.

The order protects the operator: refuse a locked bot and uncommitted work
(unless forced) before anything changes, fetch, refuse a history that does not
fast-forward, snapshot the state (a new gateway version may migrate it), move
`code/` forward, then rebuild through the runtime.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cftui import hostgit, lifecycle, locks, snapshots
from cftui.audit.events import record_event
from cftui.errors import CftuiError, RuntimeOperationError, UsageError
from cftui.fleet import BotConfig, FleetHome
from cftui.progress import Progress, ProgressEvent, no_progress

if TYPE_CHECKING:
    from cftui.runtime import Runtimes


class UpdateError(CftuiError):
    """The gateway source could not be brought up to its upstream."""


@dataclass
class UpdateResult:
    bot: str
    before: str
    after: str
    upstream: str
    snapshot: str | None = None
    rebuilt: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.before != self.after


def git(code: Path, *args: str, timeout: float = 300) -> str:
    """Run git in `code/` through the one host git (`cftui.hostgit`), which
    honours nothing the agent may have written there; UpdateError on failure."""
    try:
        return hostgit.git(code, *args, timeout=timeout)
    except hostgit.GitError as exc:
        raise UpdateError(str(exc)) from None


def uncommitted(code: Path) -> list[str]:
    """Tracked files changed in `code/` (untracked files survive a fast-forward
    or make git refuse it, so they are not counted)."""
    out = git(code, "status", "--porcelain", "--untracked-files=no")
    return [line[3:] for line in out.splitlines() if line.strip()]


def _upstream(code: Path) -> str:
    try:
        return git(code, "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}")
    except UpdateError:
        raise UpdateError(
            f"{code} has no upstream branch to update from "
            "(set one with `git branch --set-upstream-to`)"
        ) from None


def check_worktree(home: FleetHome, bot: str, *, force: bool = False) -> Path:
    """Refuse a `code/` that is not a git checkout or has uncommitted work."""
    code = home.code_dir(bot)
    if not os.path.lexists(code / ".git"):
        raise UpdateError(f"{code} is not a git checkout: nothing to update from")
    changed = uncommitted(code)
    if changed and not force:
        shown = ", ".join(changed[:3]) + (" …" if len(changed) > 3 else "")
        raise UsageError(f"{code} has uncommitted changes ({shown}): commit them, or use --force")
    _upstream(code)
    return code


def fetch(home: FleetHome, bot: str, *, force: bool = False) -> tuple[str, str, str]:
    """Check and fetch; returns (HEAD, upstream commit, upstream name). Nothing
    in the work tree changes here."""
    code = check_worktree(home, bot, force=force)
    upstream = _upstream(code)
    remote = upstream.split("/", 1)[0]
    git(code, "fetch", "--quiet", remote)
    head = git(code, "rev-parse", "HEAD")
    target = git(code, "rev-parse", "@{u}")
    if head != target:
        try:
            git(code, "merge-base", "--is-ancestor", "HEAD", "@{u}")
        except UpdateError:
            raise UpdateError(
                f"{code} has commits that are not on {upstream}: "
                "it cannot be fast-forwarded; merge by hand"
            ) from None
    return head, target, upstream


async def update(
    home: FleetHome,
    bot: BotConfig,
    runtimes: Runtimes | None,
    *,
    force: bool = False,
    rebuild: bool = True,
    progress: Progress = no_progress,
) -> UpdateResult:
    """Fetch, snapshot, fast-forward `code/` and rebuild. `runtimes=None` (or
    `rebuild=False`) updates the source alone. An operation the kill switch
    cancels (`cftui.locks`), its rebuild included."""
    async with locks.operation(home, bot.name, "update"):
        return await _update(home, bot, runtimes, force=force, rebuild=rebuild, progress=progress)


async def _update(
    home: FleetHome,
    bot: BotConfig,
    runtimes: Runtimes | None,
    *,
    force: bool,
    rebuild: bool,
    progress: Progress,
) -> UpdateResult:
    await asyncio.to_thread(check_worktree, home, bot.name, force=force)
    progress(ProgressEvent("update", 0, None, "fetching upstream"))
    head, target, upstream = await asyncio.to_thread(fetch, home, bot.name, force=force)
    result = UpdateResult(bot.name, head, head, upstream)
    if head == target:
        result.notes.append(f"already up to date with {upstream}")
        return result
    runtime = None
    if runtimes is not None:
        try:
            runtime = runtimes.for_bot(bot)
        except CftuiError as exc:
            result.notes.append(f"no runtime ({exc}): state not pulled, no rebuild")
    info = await snapshots.snapshot(home, bot, "pre-update", runtime=runtime, progress=progress)
    result.snapshot = info.name
    progress(ProgressEvent("update", 0, None, f"fast-forward to {target[:12]}"))
    code = home.code_dir(bot.name)
    await asyncio.to_thread(git, code, "merge", "--ff-only", "--quiet", "@{u}")
    result.after = await asyncio.to_thread(git, code, "rev-parse", "HEAD")
    record_event(
        home,
        "update",
        bot.name,
        before=result.before,
        after=result.after,
        upstream=upstream,
        snapshot=result.snapshot,
        forced=force,
    )
    if rebuild and runtime is not None and runtimes is not None:
        try:
            await lifecycle.rebuild(home, bot, runtimes, progress)
            result.rebuilt = True
        except CftuiError as exc:
            raise RuntimeOperationError(
                f"{bot.name}: code updated to {result.after[:12]} but the rebuild failed: {exc}"
            ) from None
    elif rebuild:
        result.notes.append(f"not rebuilt: run `cftui rebuild {bot.name}` when the runtime is up")
    return result
