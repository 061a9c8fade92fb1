"""Sizes as the operator writes them in fleet.toml (`disk = "4GiB"`) and as
they are written back there (for people to read: `humanize.human_bytes`).
Every unit is binary, as Docker reads memory sizes: "4G", "4GB" and "4GiB"
are all 4 * 2^30 bytes."""

from __future__ import annotations

import re

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*", re.IGNORECASE)
_SHOWN = (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def parse_size(text: str) -> int:
    """Bytes from "4GiB", "512MiB", "1.5G", "300m" (K, M, G, T are 2^10...);
    ValueError with the form expected otherwise."""
    m = _SIZE_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None or (m[3] and m[3].lower() == "ib" and not m[2]):
        shown = text if len(str(text)) <= 40 else str(text)[:40] + "…"
        raise ValueError(f'{shown!r} is not a size: write a number and a unit, such as "4GiB"')
    return int(float(m[1]) * _UNITS[m[2].lower()])


def format_size(n: int) -> str:
    """The exact size in the largest unit that divides it ("4GiB", "1536MiB"),
    so that writing it back to fleet.toml changes nothing."""
    for unit, factor in _SHOWN:
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"
