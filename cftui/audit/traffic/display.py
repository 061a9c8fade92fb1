"""One call as a line of text, as `cftui traffic` and `cftui --run` print it."""

from __future__ import annotations

from typing import Any


def format_call(record: dict[str, Any]) -> str:
    """One line per call, as `cftui traffic` and `cftui --run` print it."""
    ts = str(record.get("ts", ""))
    model = record.get("model") or "-"
    status = record.get("status")
    line = (
        f"{ts:<24}  {record.get('bot', '')!s:<12} {record.get('provider', '')!s:<10} "
        f"{model!s:<28} {status!s:>3}  in {record.get('tokens_in', 0)!s:>6}  "
        f"out {record.get('tokens_out', 0)!s:>6}  ttfb {_ms(record.get('ttfb_ms'))}  "
        f"{_ms(record.get('duration_ms'))}"
    )
    if record.get("error"):
        line += f"  error: {record['error']}"
    return line


def _ms(value: Any) -> str:
    return f"{value:>6.0f} ms" if isinstance(value, int | float) else "     - ms"
