"""The diff view's lines: tinted by line type, the code coloured in the
file's language on top, and whatever the agent wrote shown literally."""

from __future__ import annotations

from rich.style import Style

from cftui.tui import diff_render
from cftui.tui.diff_render import DiffStyles, has_syntax, render_diff

STYLES = DiffStyles(
    {
        "added": Style(color="green", bgcolor="#003300"),
        "removed": Style(color="red", bgcolor="#330000"),
        "hunk": Style(color="cyan"),
        "header": Style(bold=True),
        "note": Style(italic=True),
    }
)


def _diff(path: str, *lines: str) -> str:
    body = "".join(line + "\n" for line in lines)
    return f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -1,2 +1,2 @@\n{body}"


def test_added_code_keeps_its_tint_under_its_languages_colours() -> None:
    lines = render_diff(_diff("tool.py", " def f():", '-    return "a"', '+    return "b"'), STYLES)
    added = next(t for t in lines if t.plain.startswith("+    "))
    assert added.style == STYLES.of("added")  # the line's tint
    colours = {span.style.color for span in added.spans if span.style}  # type: ignore[union-attr]
    assert len(colours) >= 2  # keyword and string told apart
    assert all(span.style.bgcolor is None for span in added.spans)  # type: ignore[union-attr]
    assert has_syntax(_diff("tool.py", "+x"))


def test_a_file_with_no_known_language_is_tinted_only() -> None:
    diff = _diff("notes.unknown-ext", "+plain text")
    assert not has_syntax(diff)
    assert all(not t.spans for t in render_diff(diff, STYLES))


def test_markup_and_escapes_in_a_file_render_literally() -> None:
    evil = '+x = "[bold]no[/] [link=http://x]y[/link] \x1b[31mred\x1b]0;t\x07"\r'
    for syntax in (False, True):
        lines = render_diff(_diff("evil.py", evil, "+y = 1"), STYLES, syntax=syntax)
        shown = next(t for t in lines if "[bold]" in t.plain)
        assert shown.plain == (
            '+x = "[bold]no[/] [link=http://x]y[/link] \\x1b[31mred\\x1b]0;t\\x07"\\r'
        )
        assert all(not (span.style and span.style.link) for span in shown.spans)  # type: ignore[union-attr]
        # The CR did not split the line for the lexer: the next line is itself.
        assert lines[-1].plain == "+y = 1"


def test_a_path_with_markup_in_the_header_is_literal() -> None:
    lines = render_diff(_diff("[red]x[/].py", "+a"), STYLES)
    assert lines[0].plain == "diff --git a/[red]x[/].py b/[red]x[/].py"


def test_a_huge_file_is_shown_without_its_language(monkeypatch) -> None:
    monkeypatch.setattr(diff_render, "MAX_LEXED_CHARS", 100)
    lines = render_diff(_diff("big.py", *[f"+x{i} = {i}" for i in range(50)]), STYLES)
    assert all(not t.spans for t in lines)


def test_a_long_diff_is_cut_saying_where_the_rest_is(monkeypatch) -> None:
    monkeypatch.setattr(diff_render, "MAX_SHOWN_LINES", 10)
    lines = render_diff(
        _diff("a.py", *[f"+x{i}" for i in range(50)]), STYLES, rest_hint="see the CLI"
    )
    assert len(lines) == 11 and lines[-1].plain == "… 44 more lines. see the CLI"
