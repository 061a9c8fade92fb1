"""What the fleet's rows are drawn from: fleet.toml, the locks and, at the
app's start, each row's state (the first look). No Textual here: the CLI
starts this read before it imports Textual (`start_reading`), so that the
rows are known when the fleet screen is first laid out and its first paint
has them (issue #23: the fleet painted within 0.5 s of launch).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cftui.errors import CftuiError

if TYPE_CHECKING:
    from cftui.fleet import BotConfig, FleetHome
    from cftui.runtime.status import BotStatus

# The fleet's rows wait for the first look at most this long an answer of
# the engine (it answers in milliseconds; a hung one is the full status's).
FIRST_LOOK_TIMEOUT_S = 0.2


@dataclass
class FleetFilesRead:
    """fleet.toml and the locks as read from disk, and at the app's start the
    rows' states."""

    configs: dict[str, BotConfig]
    locked: frozenset[str]
    error: str | None = None
    first_look: dict[str, BotStatus] | None = None  # the rows' states (`first_look`)


def read_fleet_files(home: FleetHome, with_first_look: bool = False) -> FleetFilesRead:
    """fleet.toml and the locks (blocking: a thread's work); with
    `with_first_look`, each bot's state too. A fleet.toml that does not
    parse is the error, with no rows."""
    from cftui import locks

    try:
        configs = home.bots()
        error = None
    except CftuiError as exc:
        configs, error = {}, str(exc)
    locked = frozenset(locks.locked_bots(home))
    look = first_look(home, list(configs.values())) if with_first_look and configs else None
    return FleetFilesRead(configs, locked, error, look)


def first_look(home: FleetHome, bots: list[BotConfig]) -> dict[str, BotStatus] | None:
    """Each bot's state as `cftui list` reads it: this machine's engine
    socket, no SDK, no runtime made (`fleet_view.read_now`), ~10 ms where
    the full status waits ~300 ms for the domain's and the SDK's imports.
    Drawn with the rows, in their first paint: a table's every change
    paints all its cells again (~100 ms on a busy machine). None when
    another runtime or engine is asked, or the engine does not answer at
    once, or not in its shape: the full status says it."""
    from cftui import fleet_view

    found = fleet_view.read_now(home, bots, brief=True, probe=False, timeout=FIRST_LOOK_TIMEOUT_S)
    if found is None or found[1]:
        return None
    return found[0]


def start_reading(home: FleetHome) -> Future[FleetFilesRead]:
    """`read_fleet_files` with the first look, begun in a thread of its
    own: the CLI starts it before Textual's import (~200 ms), which it
    overlaps; the app takes the result when it is there by the time the
    app loads, and otherwise waits for it in a worker."""
    future: Future[FleetFilesRead] = Future()

    def read() -> None:
        try:
            future.set_result(read_fleet_files(home, with_first_look=True))
        except BaseException as exc:  # the app's worker reads again (`_await_early_files`)
            future.set_exception(exc)

    threading.Thread(target=read, name="cftui-fleet-files", daemon=True).start()
    return future
