"""The budget hook: on a timer the controller calls the spend domain's one
check (`cftui.spend.check_budgets`, issue 19; the TUI and `cftui --run`
call it too), which turns the LLM proxies' spend into `spend_threshold`
events at 80 % and 100 % of each budget (each once per period, whoever asks
first) and stops a bot whose budget is spent when fleet.toml says so.
`notify` sends those events out as `budget`. The check is injectable for
tests; the controller uses the spend domain's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cftui.controller.clock import Clock
from cftui.errors import CftuiError
from cftui.fleet import FleetHome
from cftui.runtime import Runtimes
from cftui.snapshots.reasons import one_line
from cftui.spend import check_budgets

POLL_S = 30.0

BudgetCheck = Callable[[FleetHome, Runtimes], Awaitable[list[Any]]]


async def watch_budgets(
    home: FleetHome,
    runtimes: Runtimes,
    clock: Clock,
    say: Callable[[str], None],
    poll_s: float = POLL_S,
    check: BudgetCheck = check_budgets,
) -> None:
    """Forever: check the budgets every `poll_s`; a line per crossing."""
    while True:
        try:
            for notice in await check(home, runtimes):
                text = notice.summary() if hasattr(notice, "summary") else str(notice)
                say(f"budget: {text}")
        except (CftuiError, OSError) as exc:
            say(f"budget check failed: {one_line(exc)}")
        except Exception as exc:  # a long-running loop reports and goes on
            say(f"budget check failed: {type(exc).__name__}: {one_line(exc)}")
        await clock.sleep(poll_s)
