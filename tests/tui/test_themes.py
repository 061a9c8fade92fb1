"""The light theme's state colours are legible (issue #22: `● up` was
about 1.6:1 under tmux's 256 colours)."""

from __future__ import annotations

import pytest
from rich.color import Color as RichColor
from rich.color import ColorSystem
from textual.color import Color

from cftui.tui.themes import DARK, LIGHT, LIGHT_THEME


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(v: int) -> float:
        x = v / 255
        return x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4

    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def in_256(color: Color) -> tuple[int, int, int]:
    c = RichColor.parse(color.hex).downgrade(ColorSystem.EIGHT_BIT).get_truecolor()
    return (c.red, c.green, c.blue)


@pytest.mark.parametrize("state", ["success", "warning", "error"])
@pytest.mark.parametrize("surface", ["surface", "panel", "background"])
def test_light_state_colours_read_in_true_and_256_colours(state: str, surface: str) -> None:
    colours = LIGHT_THEME.to_color_system().generate()
    fg, bg = Color.parse(colours[state]), Color.parse(colours[surface])
    assert contrast(fg.rgb, bg.rgb) >= 4.5
    # The 256-colour palette has no amber darker than olive (#5f5f00: 3.9:1).
    assert contrast(in_256(fg), in_256(bg)) >= (3.9 if state == "warning" else 4.5)


async def test_ctrl_t_switches_to_the_legible_light_theme(make) -> None:
    app = make()
    async with app.run_test(size=(120, 36)) as pilot:
        assert app.theme == DARK
        await pilot.press("ctrl+t")
        assert app.theme == LIGHT
        await pilot.press("ctrl+t")
        assert app.theme == DARK
