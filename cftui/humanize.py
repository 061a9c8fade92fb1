"""Sizes and counts in a few characters, the same for both faces: the TUI's
tables and the CLI's lines. Sizes use IEC units (1 KiB = 1024 bytes), the
one spelling everywhere."""

from __future__ import annotations

import re

_DURATION_RE = re.compile(r"(\d{1,6})([smhdw])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(n: int | float) -> str:
    """1234 -> "1.2 KiB", 512 -> "512 B"."""
    value = float(n)
    for unit in _BYTE_UNITS:
        if value < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable: the last unit takes any size")


def human_count(n: int) -> str:
    """1234 -> 1.2k, 3_400_000 -> 3.4M."""
    if n < 1000:
        return str(n)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    return str(n)


def format_uptime(seconds: float | None) -> str:
    """An uptime in its two largest units (`3m07s`, `2d04h`); `-` when not running."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def format_usd(usd: float | None) -> str:
    """A cost in a few characters: `$12.35`, `$0.042`, `$0.0031`, `<$0.0001`;
    `-` for None (no price known: an unpriced call is never shown as $0)."""
    if usd is None:
        return "-"
    if usd == 0:
        return "$0"
    if usd >= 1000:
        return f"${usd:,.0f}"
    if usd >= 1:
        return f"${usd:.2f}"
    if usd >= 0.01:
        return f"${usd:.3f}"
    if usd >= 0.0001:
        return f"${usd:.4f}"
    return "<$0.0001"


def format_ago(seconds: float) -> str:
    """How long ago, in its largest unit (`12s ago`, `5m ago`, `3h ago`, `2d ago`);
    `now` for less than a second, or a time a little ahead of this clock."""
    if seconds < 1:
        return "now"
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def parse_duration(text: str, units: str = "smhdw") -> int | None:
    """Seconds of a short duration (`90s`, `30m`, `2h`, `3d`, `1w`; at most
    six digits, so no overflow) in one of `units`, or None when `text` is
    not one. The one grammar of `--since` ages (no weeks) and the
    controller's `snapshot_every`."""
    m = _DURATION_RE.fullmatch(text)
    return int(m[1]) * _DURATION_UNITS[m[2]] if m and m[2] in units else None
