"""One call as a line of text, as `cftui traffic` and `cftui --run` print it."""

from __future__ import annotations

from typing import Any

from cftui.audit.traffic.fields import record_cost
from cftui.humanize import format_usd


def format_call(record: dict[str, Any]) -> str:
    """One line per call, as `cftui traffic` and `cftui --run` print it."""
    ts = str(record.get("ts", ""))
    model = record.get("model") or "-"
    status = record.get("status")
    line = (
        f"{ts:<24}  {record.get('bot', '')!s:<12} {record.get('provider', '')!s:<10} "
        f"{model!s:<28} {status!s:>3}  in {record.get('tokens_in', 0)!s:>6}  "
        f"out {record.get('tokens_out', 0)!s:>6}  ttfb {_ms(record.get('ttfb_ms'))}  "
        f"{_ms(record.get('duration_ms'))}  {call_cost(record)}"
    )
    if record.get("error"):
        line += f"  error: {record['error']}"
    return line


def _ms(value: Any) -> str:
    return f"{value:>6.0f} ms" if isinstance(value, int | float) else "     - ms"


def call_cost(record: dict[str, Any]) -> str:
    """A call's cost as shown beside it: `$0.0031`, or `unpriced` (never $0
    for a call whose price is unknown: `cost_status` says why, when set)."""
    cost = record_cost(record)
    return "unpriced" if cost is None else format_usd(cost)
