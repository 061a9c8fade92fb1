"""What a money budget leaves, from the day's and the month's totals: apart
from the spend scans (`spend`), so that the fleet table draws its Left$
column without loading them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cftui.audit.traffic.totals import Totals


def budget_left(
    daily_usd: float, monthly_usd: float, today: Totals | None, month: Totals | None
) -> float | None:
    """What a bot may still spend before a money budget stops it: the
    smaller of what is left of the day's and the month's (0 when spent);
    None when it has neither budget (0 in fleet.toml is none) or its spend
    is not known yet. Unpriced calls cost nothing here, as in the proxy's
    ledger, which prices them at nothing it knows."""
    left: list[float] = []
    if daily_usd > 0:
        if today is None:
            return None
        left.append(daily_usd - today.cost_usd)
    if monthly_usd > 0:
        if month is None:
            return None
        left.append(monthly_usd - month.cost_usd)
    return max(min(left), 0.0) if left else None
