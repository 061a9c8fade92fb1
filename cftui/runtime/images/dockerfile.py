"""Reading a Dockerfile the way Docker's own parser does, so that what the
runtime checks is what the engine will run.

A gateway's Dockerfile is the agent's to write, and dockerd runs some of its
instructions itself, in the host's network namespace: `ADD <url>` is fetched
by the daemon, so a build with no network still reads the host's loopback.
`remote_add_sources` finds every such source, however it is spelled: any
instruction case, line continuations with the default or a `# escape=`
escape, the JSON form, flags before the sources, `ONBUILD ADD`, quotes and
escapes inside a word. It mirrors moby/buildkit's `frontend/dockerfile/parser`
(the classic builder uses the same one): directives, continuation and
comment handling, `extractBuilderFlags`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_VALID_DIRECTIVES = {"escape", "syntax"}
_WHITESPACE_RE = re.compile(r"[\t\v\f\r ]+")
# A git source as `ADD` would take it (BuildKit: git@host:path, or any URL).
_SCP_LIKE_RE = re.compile(r"^[A-Za-z0-9_.+-]+@[A-Za-z0-9_.-]+:")


class DockerfileError(ValueError):
    """A Dockerfile the engine would refuse, or one that cannot be checked."""


@dataclass(frozen=True)
class Instruction:
    """One instruction: its lower-case keyword, flags (`--chown=...`), the
    rest of the line, the arguments as the engine splits them, the line it
    starts on (1-based), and the instruction it triggers for `ONBUILD`."""

    cmd: str
    flags: tuple[str, ...]
    rest: str
    args: tuple[str, ...]
    line: int
    trigger: Instruction | None = None


def _lstrip(text: str) -> str:
    return text.lstrip(" \t\n\r\v\f\x85\xa0")


def parse(text: str) -> tuple[list[Instruction], str]:
    """The instructions of a Dockerfile and its escape character."""
    escape = "\\"
    continuation = re.compile(r"\\[ \t]*$")
    directives_done = False
    seen: set[str] = set()

    def directive(line: str) -> None:
        nonlocal directives_done, escape, continuation
        if directives_done:
            return
        m = _DIRECTIVE_RE.match(line)
        if not m or m[1].lower() not in _VALID_DIRECTIVES:
            directives_done = True
            return
        key = m[1].lower()
        if key in seen:
            raise DockerfileError(f"only one {key} parser directive can be used")
        seen.add(key)
        if key == "escape":
            if m[2] not in ("\\", "`"):
                raise DockerfileError(f"invalid escape token {m[2]!r}: use ` or \\")
            escape = m[2]
            continuation = re.compile(re.escape(escape) + r"[ \t]*$")

    def strip_comment(line: str) -> str:
        return "" if line.startswith("#") else line

    if text.startswith("\ufeff"):
        text = text[1:]
    # bufio.ScanLines: split on \n, drop one trailing \r.
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    if text.endswith("\n"):
        lines.pop()
    out: list[Instruction] = []
    i = 0
    while i < len(lines):
        raw = _lstrip(lines[i])
        directive(raw)
        current = strip_comment(raw)
        i += 1
        start = i
        joined, ended = _trim_continuation(current, continuation)
        if ended and joined == "":
            continue
        while not ended and i < len(lines):
            raw = lines[i]
            directive(raw)
            i += 1
            if _lstrip(raw).startswith("#"):
                continue
            part = strip_comment(raw)
            if _lstrip(part) == "":
                continue
            part, ended = _trim_continuation(part, continuation)
            joined += part
        out.append(_instruction(joined, start, escape))
    return out, escape


def _trim_continuation(line: str, continuation: re.Pattern[str]) -> tuple[str, bool]:
    if continuation.search(line):
        return continuation.sub("", line), False
    return line, True


def _instruction(line: str, number: int, escape: str, depth: int = 0) -> Instruction:
    parts = _WHITESPACE_RE.split(line.strip(), maxsplit=1)
    cmd = parts[0].lower()
    rest, flags = _builder_flags(parts[1]) if len(parts) == 2 else ("", [])
    rest = rest.strip()
    trigger = None
    if cmd == "onbuild" and rest and depth == 0:
        trigger = _instruction(rest, number, escape, depth + 1)
    return Instruction(cmd, tuple(flags), rest, tuple(_args(rest)), number, trigger)


def _builder_flags(line: str) -> tuple[str, list[str]]:
    """Leading `--name[=value]` words and what follows them (extractBuilderFlags)."""
    words: list[str] = []
    word: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    quote = ""
    blank_ok = False
    parsing_arg = False
    need_arg = True
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            if not parsing_arg and (ch != "-" or pos + 1 == n or line[pos + 1] != "-"):
                return line[pos:], words
            phase = in_word
        if phase in (in_word, in_quote) and pos == n:
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)
            break
        if phase == in_word:
            if ch.isspace():
                phase = in_spaces
                text = "".join(word)
                if parsing_arg:
                    words[-1] += "=" + text
                    parsing_arg = False
                    need_arg = True
                else:
                    if text == "--":
                        return line[pos:], words
                    if blank_ok or text:
                        if need_arg:
                            parsing_arg = True
                        words.append(text)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch == "=" and need_arg:
                need_arg = False
            if ch in "'\"":
                quote = ch
                blank_ok = True
                phase = in_quote
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


def _args(rest: str) -> list[str]:
    """The JSON form when the line is a JSON list of strings, else its words."""
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return [w for w in _WHITESPACE_RE.split(rest) if w]


def _spellings(word: str, escape: str) -> list[str]:
    """A word as written and as the engine's shell lexer may read it (quotes
    and escapes removed), so that `h"ttp"://` is caught like `http://`."""
    stripped = "".join(c for c in word if c not in "'\"" and c != escape and c != "\\")
    return [word, stripped]


def _is_remote(word: str) -> bool:
    return "://" in word or bool(_SCP_LIKE_RE.match(word))


@dataclass(frozen=True)
class RemoteSource:
    line: int
    source: str
    why: str


def remote_add_sources(instructions: list[Instruction], escape: str) -> list[RemoteSource]:
    """Every `ADD` (also under `ONBUILD`) that would make dockerd fetch
    something: a URL or git source, or a source with a variable in it (its
    value cannot be known before the build, so it is refused too)."""
    found: list[RemoteSource] = []
    for ins in instructions:
        target = ins.trigger if ins.cmd == "onbuild" else ins
        if target is None or target.cmd != "add":
            continue
        words = list(target.args)
        sources = words[:-1] if len(words) > 1 else words
        flagged = False
        for word in [*target.flags, *words]:
            if any(_is_remote(s) for s in _spellings(word, escape)):
                found.append(RemoteSource(ins.line, word, "a remote source"))
                flagged = True
                break
        if flagged:
            continue
        for word in sources:
            if "$" in word:
                found.append(RemoteSource(ins.line, word, "a source named by a variable"))
                break
    return found


def onbuild_remote_sources(triggers: list[str]) -> list[RemoteSource]:
    """The same check on an image's ONBUILD triggers (`Config.OnBuild`),
    which run in the build of any image FROM it."""
    instructions = [_instruction(t, 0, "\\") for t in triggers if t.strip()]
    return remote_add_sources(instructions, "\\")


_VAR_RE = re.compile(r"\$\{([A-Za-z_]\w*)(?:(:?[-+])([^}]*))?\}|\$([A-Za-z_]\w*)")


def _expand(word: str, env: dict[str, str]) -> tuple[str, bool]:
    """`word` with `$NAME`, `${NAME}`, `${NAME:-x}`, `${NAME:+x}` replaced
    from `env`; and whether a variable was left that `env` cannot resolve."""
    unresolved = False

    def sub(m: re.Match[str]) -> str:
        nonlocal unresolved
        name = m[1] or m[4]
        op, alt = m[2], m[3] or ""
        value = env.get(name)
        if op in ("-", ":-"):
            return value if (value if op == ":-" else value is not None) else alt
        if op in ("+", ":+"):
            return alt if (value if op == ":+" else value is not None) else ""
        if value is None:
            unresolved = True
            return m[0]
        return value

    return _VAR_RE.sub(sub, word), unresolved


def _global_args(instructions: list[Instruction], buildargs: dict[str, str]) -> dict[str, str]:
    """The ARGs declared before the first FROM (the only ones FROM sees),
    with their defaults, overridden by the build args given."""
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.cmd == "from":
            break
        if ins.cmd != "arg":
            continue
        for word in ins.args:
            name, sep, value = word.partition("=")
            if name in buildargs:
                env[name] = buildargs[name]
            elif sep:
                env[name] = _expand(value.strip("\"'"), env)[0]
    return env


@dataclass(frozen=True)
class ImageRef:
    """An image a build takes files from: a FROM line or a `COPY --from=`."""

    line: int
    how: str  # "FROM" or "COPY --from"
    ref: str
    unresolved: bool


def image_refs(instructions: list[Instruction], buildargs: dict[str, str]) -> list[ImageRef]:
    """Every image the build reads, stages and scratch left out, with the
    global ARGs expanded (`unresolved`: a variable is left that cftui
    cannot know)."""
    env = _global_args(instructions, buildargs)
    stages: set[str] = set()
    out: list[ImageRef] = []
    for ins in instructions:
        target = ins.trigger if ins.cmd == "onbuild" else ins
        if target is None:
            continue
        if target.cmd == "from" and target.args:
            ref, unresolved = _expand(target.args[0], env)
            if ref.lower() not in stages and ref.lower() != "scratch":
                out.append(ImageRef(ins.line, "FROM", ref, unresolved))
            if len(target.args) >= 3 and target.args[1].lower() == "as":
                stages.add(target.args[2].lower())
        elif target.cmd == "copy":
            for flag in target.flags:
                name, _, value = flag.partition("=")
                if name.lstrip("-").lower() != "from":
                    continue
                if value.lower() in stages or value.isdigit():
                    continue
                # COPY --from is not expanded by the classic builder: any $ is literal.
                out.append(ImageRef(ins.line, "COPY --from", value, "$" in value))
    return out


def from_images(instructions: list[Instruction], base_default: str | None) -> list[str]:
    """The images FROM lines need, in order (stages, scratch and names still
    holding a variable left out; `${BASE_IMAGE}` read as its default)."""
    buildargs = {"BASE_IMAGE": base_default} if base_default else {}
    refs: list[str] = []
    for r in image_refs(instructions, buildargs):
        if r.how == "FROM" and r.ref and not r.unresolved and r.ref not in refs:
            refs.append(r.ref)
    return refs


def base_arg_default(instructions: list[Instruction]) -> tuple[bool, str | None]:
    """(declares `ARG BASE_IMAGE`, its default)."""
    for ins in instructions:
        if ins.cmd != "arg" or not ins.args:
            continue
        name, sep, value = ins.rest.partition("=")
        if name.strip() == "BASE_IMAGE":
            value = value.strip().strip("\"'")
            return True, (value or None) if sep else None
    return False, None
