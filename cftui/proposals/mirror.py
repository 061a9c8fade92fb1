"""The host's proposals tree, when the gateway writes a copy of it elsewhere.

A Docker gateway writes the host's `proposals/` itself (a bind mount). A
Lima gateway writes its VM's copy, and a gateway on another Docker host
that host's (`cftui.hosts.layout`), so every read of the tree here (the scan
behind `cftui proposals`, `diff`, `promote`, `reject`, the TUI's tab and its
counts) first brings that copy home, and every change cftui makes to the
host's (a reject, a promotion) is sent back; the runtime does the moving
(`Runtime.pull_proposals` / `push_proposals`), links never followed either
way. Here only, so no caller can forget either step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Awaitable, Callable

from cftui.errors import CftuiError, FleetError, ProposalError
from cftui.fleet import BotConfig, FleetHome
from cftui.hosts.config import LOCAL
from cftui.runtime import Runtimes
from cftui.runtime.base import Runtime

# The runtimes whose gateway writes its own copy of the tree (not the host's).
_ELSEWHERE = frozenset({"lima"})


# fleet.toml parsed once per version of the file (it is replaced whole when
# edited): the TUI scans every bot on its cadence, mostly Docker bots for
# which this module does nothing.
_parsed: dict[str, tuple[tuple[int, int, int], dict[str, BotConfig]]] = {}
_parsed_lock = threading.Lock()


def _config(home: FleetHome, bot: str) -> BotConfig | None:
    """The bot's config when its runtime keeps the tree elsewhere, else None."""
    path = home.fleet_toml
    try:
        st = os.stat(path)
        version = (st.st_mtime_ns, st.st_size, st.st_ino)
        with _parsed_lock:
            hit = _parsed.get(str(path))
        if hit is None or hit[0] != version:
            hit = (version, home.bots())
            with _parsed_lock:
                _parsed[str(path)] = hit
    except (OSError, FleetError):
        return None  # no readable fleet.toml: the scan says what is wrong
    config = hit[1].get(bot)
    if config is None:
        return None
    return config if config.runtime in _ELSEWHERE or config.host != LOCAL else None


async def _with_runtime(
    home: FleetHome, config: BotConfig, step: Callable[[Runtime], Awaitable[None]], what: str
) -> None:
    runtimes = Runtimes(home)
    try:
        await step(runtimes.for_bot(config))
    except CftuiError as exc:
        raise ProposalError(f"{config.name}: {what}: {exc}") from None
    finally:
        await runtimes.aclose()


def bring_home(home: FleetHome, bot: str) -> None:
    """Before the tree is read: the gateway's copy, if it keeps one
    elsewhere, into the host's (blocking; the scan runs in a thread or in
    the CLI, never on the TUI's loop). A VM that is not running is no error:
    the host's copy is the last one brought home."""
    config = _config(home, bot)
    if config is None:
        return
    coro = _with_runtime(
        home, config, lambda rt: rt.pull_proposals(config), "bringing its proposals home"
    )
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    # Called on a thread that runs a loop: the pull gets a loop of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


async def send_back(home: FleetHome, bot: str) -> None:
    """After cftui changed the host's tree: the gateway's copy, if it keeps
    one elsewhere, made the same (or marked for its next start)."""
    config = _config(home, bot)
    if config is None:
        return
    await _with_runtime(
        home, config, lambda rt: rt.push_proposals(config), "sending its proposals back"
    )
