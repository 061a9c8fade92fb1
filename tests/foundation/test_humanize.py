"""Sizes and counts read the same in the TUI and the CLI: one formatter, IEC units."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cftui.humanize import format_uptime, human_bytes, human_count

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1234, "1.2 KiB"),
        (5 << 20, "5.0 MiB"),
        (3 << 30, "3.0 GiB"),
        (2 << 40, "2.0 TiB"),
        (1 << 60, "1048576.0 TiB"),
    ],
)
def test_sizes_are_spelled_in_iec_units(size: int, shown: str) -> None:
    assert human_bytes(size) == shown


@pytest.mark.parametrize(
    ("count", "shown"), [(999, "999"), (1234, "1.2k"), (3_400_000, "3.4M"), (250_000, "250k")]
)
def test_counts_are_short(count: int, shown: str) -> None:
    assert human_count(count) == shown


def test_no_face_keeps_a_formatter_of_its_own() -> None:
    """The CLI and the TUI import `cftui.humanize`: no module of either
    spells a size unit in a loop of its own."""
    for face in ("cli", "tui"):
        for path in (ROOT / "cftui" / face).glob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Tuple) and {"KB", "KiB", "MB", "MiB"} & {
                    elt.value for elt in node.elts if isinstance(elt, ast.Constant)
                }:
                    raise AssertionError(f"{path.relative_to(ROOT)}:{node.lineno}: a unit list")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0, "0s"), (59.9, "59s"), (187, "3m07s"), (7260, "2h01m"), (187200, "2d04h")],
)
def test_an_uptime_is_its_two_largest_units(seconds: float | None, shown: str) -> None:
    assert format_uptime(seconds) == shown


def test_format_usd_never_shows_an_unknown_cost_as_zero() -> None:
    from cftui.humanize import format_usd

    assert format_usd(None) == "-"
    assert format_usd(0) == "$0"
    assert [format_usd(x) for x in (1234.5, 12.345, 0.042, 0.0031, 0.00001)] == [
        "$1,234",
        "$12.35",
        "$0.042",
        "$0.0031",
        "<$0.0001",
    ]
