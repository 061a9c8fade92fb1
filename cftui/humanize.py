"""Sizes and counts in a few characters, the same for both faces: the TUI's
tables and the CLI's lines. Sizes use IEC units (1 KiB = 1024 bytes), the
one spelling everywhere."""

from __future__ import annotations

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
