"""The budget hook: the controller asks the spend domain (issue 19,
`cftui.spend.check_budgets`) to turn the LLM proxies' spend into
`spend_threshold` events at 80 % and 100 % (each once per period, whoever
asks first) and to stop a bot whose budget is spent when fleet.toml says
so; `notify` sends those events out as `budget`.

That domain lands on its own branch: until it is on main this hook finds
no `cftui.spend` and does nothing, and says so once in the log. When it
lands, replace the lookup below with a plain import (the layers allow it:
the controller sits above `spend`).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cftui.controller.clock import Clock
from cftui.errors import CftuiError
from cftui.fleet import FleetHome
from cftui.runtime import Runtimes
from cftui.snapshots.reasons import one_line

log = logging.getLogger("cftui.serve")
POLL_S = 30.0

BudgetCheck = Callable[[FleetHome, Runtimes], Awaitable[list[Any]]]


def spend_check() -> BudgetCheck | None:
    """`cftui.spend.check_budgets`, where the spend domain is installed."""
    try:
        module = importlib.import_module("cftui.spend")
    except ImportError:
        return None
    check: BudgetCheck | None = getattr(module, "check_budgets", None)
    return check


async def watch_budgets(
    home: FleetHome,
    runtimes: Runtimes,
    clock: Clock,
    say: Callable[[str], None],
    poll_s: float = POLL_S,
    check: BudgetCheck | None = None,
) -> None:
    """Forever: check the budgets every `poll_s`; a line per crossing."""
    check = check or spend_check()
    if check is None:
        say("budget alerts: the spend domain (cftui.spend, issue 19) is not installed: none sent")
        return
    while True:
        try:
            for notice in await check(home, runtimes):
                text = notice.summary() if hasattr(notice, "summary") else str(notice)
                say(f"budget: {text}")
        except (CftuiError, OSError) as exc:
            say(f"budget check failed: {one_line(exc)}")
        await clock.sleep(poll_s)
        await asyncio.sleep(0)
