"""A unified diff made into highlighted lines: each line tinted by its type
(added, removed, hunk, header), and the code in it coloured in the file's
language, guessed from its name by Pygments (plain when there is no lexer,
or the file is too big to be worth it).

Every piece of text the agent wrote (paths in the headers, the content) is
made inert before it becomes a `Text`, and is appended as a plain string,
never parsed as markup: `[bold]` shows as `[bold]`, an escape sequence as
`\\x1b`. Lexing happens on the raw text (so the lexer sees the real code)
and each token is made inert on its own, which is the same as making the
line inert: `inert` maps character by character.

Pure and Textual-free but for the styles it is given, so it runs in a
thread worker: a 5,000-line diff costs the screen nothing while it is lexed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rich.style import Style
from rich.syntax import Syntax
from rich.text import Span, Text

from cftui.inert import inert

# More than this many lines and the view says where to read the rest.
MAX_SHOWN_LINES = 20_000
# A file section bigger than this is shown without its language: lexers are
# regular expressions, and the agent chooses what they run on.
MAX_LEXED_CHARS = 1 << 20

_HEADERS = ("diff --git ", "--- ", "+++ ", "new file mode ", "deleted file", "new mode ")
TONES = ("added", "removed", "hunk", "header", "note")


@dataclass(frozen=True)
class DiffStyles:
    """The theme's styles for each tone of line, and whether it is dark
    (which syntax theme the code takes)."""

    tones: dict[str, Style]
    dark: bool = True

    def of(self, tone: str) -> Style:
        return self.tones.get(tone, Style.null())


def tone_of(line: str) -> str:
    """Which kind of diff line this is ("" for context)."""
    if line.startswith(_HEADERS):
        return "header"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "added"
    if line.startswith("-"):
        return "removed"
    if line.startswith(("#", "\\", "Binary files ")):
        return "note"
    return ""


def render_diff(
    diff: str,
    styles: DiffStyles,
    *,
    heading: str = "",
    rest_hint: str = "",
    syntax: bool = True,
) -> list[Text]:
    """The lines of the view: `heading`, then `diff` highlighted (the code
    in its language too with `syntax`), cut past MAX_SHOWN_LINES with
    `rest_hint` saying where to read the rest."""
    out: list[Text] = []
    if heading:
        out += [Text(part, style="bold") for part in inert(heading, multiline=True).split("\n")]
        out.append(Text(""))
    lines = diff.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    shown = lines[:MAX_SHOWN_LINES]
    for start, end, path in _sections(shown):
        out += _section(shown[start:end], path if syntax else None, styles)
    if len(lines) > MAX_SHOWN_LINES:
        cut = len(lines) - MAX_SHOWN_LINES
        out.append(Text(f"… {cut} more lines. {rest_hint}".rstrip(), style=styles.of("note")))
    if not lines:
        out.append(Text("(no textual difference)", style=styles.of("note")))
    return out


def message_lines(text: Text | str) -> list[Text]:
    """A note in place of a diff, as lines (agent text in it made inert)."""
    shown = text if isinstance(text, Text) else Text(inert(text, multiline=True))
    return list(shown.split("\n"))


def _sections(lines: list[str]) -> Iterator[tuple[int, int, str | None]]:
    """Each file's part of the diff: (first line, end, its path)."""
    start, path = 0, None
    for i, line in enumerate(lines):
        if line.startswith("diff --git ") and i > start:
            yield start, i, path
            start = i
        if line.startswith("diff --git "):
            path = _path_of(line)
    if start < len(lines):
        yield start, len(lines), path


def _path_of(header: str) -> str | None:
    """The file's name from `diff --git a/PATH b/PATH` (cftui writes both the same)."""
    rest = header.removeprefix("diff --git ")
    half = len(rest) // 2
    a, b = rest[:half], rest[half + 1 :]
    if a.startswith("a/") and b.startswith("b/") and a[2:] == b[2:]:
        return b[2:]
    return None


def has_syntax(diff: str) -> bool:
    """Whether any file of `diff` has a language to colour (else the plain
    lines are all there is to show)."""
    return any(
        _lexer(_path_of(line), 0) is not None
        for line in diff.split("\n", MAX_SHOWN_LINES)[:MAX_SHOWN_LINES]
        if line.startswith("diff --git ")
    )


def _lexer(path: str | None, size: int):
    if path is None or size > MAX_LEXED_CHARS:
        return None
    from pygments.lexers import get_lexer_for_filename
    from pygments.util import ClassNotFound

    try:
        return get_lexer_for_filename(path, stripnl=False, ensurenl=True)
    except (ClassNotFound, ValueError):
        return None


def _section(lines: list[str], path: str | None, styles: DiffStyles) -> list[Text]:
    lexer = _lexer(path, sum(len(line) + 1 for line in lines))
    spans = _spans_by_line(lines, lexer, styles.dark) if lexer is not None else {}
    out = []
    for i, line in enumerate(lines):
        tone = tone_of(line)
        base = styles.of(tone) if tone else Style.null()
        code = spans.get(i)
        if code is None or not line:
            out.append(Text(inert(line.replace("\t", "    ")), style=base, end=""))
            continue
        # The lexer only says where each style starts and ends: what is shown
        # is always the line itself, made inert piece by piece.
        if "\t" not in line and line.isprintable():  # inert would change nothing
            runs, pos = [], 1
            for length, style in code:
                if style is not None:
                    runs.append(Span(pos, pos + length, style))
                pos += length
            out.append(Text(line, style=base, end="", spans=runs))
            continue
        text = Text(inert(line[0]), style=base, end="")
        pos = 1
        for length, style in code:
            piece = line[pos : pos + length]
            text.append(inert(piece.replace("\t", "    ")), style=style)
            pos += length
        if pos < len(line):
            text.append(inert(line[pos:].replace("\t", "    ")))
        out.append(text)
    return out


Spans = list[tuple[int, Style | None]]


def _spans_by_line(lines: list[str], lexer, dark: bool) -> dict[int, Spans]:
    """For each content line of each hunk, its code's styles as (length,
    style) runs: the old side (context and removed lines) and the new side
    (context and added lines) are each lexed whole, so a string or comment
    that spans lines is coloured as one."""
    theme = _Theme("ansi_dark" if dark else "ansi_light")
    out: dict[int, Spans] = {}
    i = 0
    while i < len(lines):
        if not lines[i].startswith("@@"):
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j][:1] in (" ", "+", "-", "\\"):
            j += 1
        old = [k for k in range(i + 1, j) if lines[k][:1] in (" ", "-")]
        new = [k for k in range(i + 1, j) if lines[k][:1] in (" ", "+")]
        for side in (old, new):
            # A CR would be a line break to the lexer: the same length, no break.
            code = "\n".join(lines[k][1:].replace("\r", " ") for k in side) + "\n"
            runs = _lex_lines(code, lexer, theme)
            if runs is not None:
                out.update(zip(side, runs, strict=False))  # context: the new side's
        i = j
    return out


class _Theme:
    """A syntax theme's foreground style of each token type, looked up once."""

    def __init__(self, name: str) -> None:
        self._theme = Syntax.get_theme(name)
        self._styles: dict[object, Style | None] = {}

    def style(self, token_type: object) -> Style | None:
        try:
            return self._styles[token_type]
        except KeyError:
            style = _fg(self._theme.get_style_for_token(token_type))  # type: ignore[arg-type]
            self._styles[token_type] = style
            return style


def _lex_lines(code: str, lexer, theme: _Theme) -> list[Spans] | None:
    """The style runs of each line of `code`; None when the lexer's tokens
    do not cover the code exactly (then the hunk is shown plain)."""
    lines: list[Spans] = []
    line: Spans = []
    total = 0
    for token_type, value in lexer.get_tokens(code):
        total += len(value)
        style = theme.style(token_type)
        for n, part in enumerate(value.split("\n")):
            if n:
                lines.append(line)
                line = []
            if part:
                line.append((len(part), style))
    if line:
        lines.append(line)
    return lines if total == len(code) else None


def _fg(style: Style) -> Style | None:
    """A token's colour and weight only: the line's tint stays its background."""
    if not style:
        return None
    return Style(color=style.color, bold=style.bold, italic=style.italic)
