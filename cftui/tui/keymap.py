"""The user's keymap file: `$XDG_CONFIG_HOME/cftui/keymap.toml` (else
`~/.config/cftui/keymap.toml`), read once at start.

It maps binding ids (every binding of the app has one, `bot.start`...) to
keys, Textual's names, several separated by commas:

    "bot.start" = "u"
    [traffic]
    filter = "f,slash"

Nested tables join with dots, so both forms above name `bot.start` and
`traffic.filter`. Anything wrong (bad TOML, an unknown id, a value that is
not a key list) is one line naming the file; the app then does not start,
rather than start with keys the operator did not ask for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from textual.binding import Binding

from cftui.errors import UsageError

# One key name: letters, digits, `+` for modifiers, `_` as in `question_mark`.
_KEY = re.compile(r"^[A-Za-z0-9_+]+$|^[^\s,]$")


def keymap_path(environ: Mapping[str, str] = os.environ) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cftui" / "keymap.toml"


def binding_ids() -> frozenset[str]:
    """The id of every binding declared in the TUI package."""
    import importlib
    import pkgutil

    import cftui.tui

    ids: set[str] = set()
    for info in pkgutil.iter_modules(cftui.tui.__path__):
        module = importlib.import_module(f"cftui.tui.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__:
                bindings = vars(value).get("BINDINGS", ())
            elif isinstance(value, list):
                bindings = value
            else:
                continue
            ids |= {b.id for b in bindings if isinstance(b, Binding) and b.id}
    return frozenset(ids)


def _flatten(table: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for name, value in table.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{name}.")
        else:
            flat[prefix + name] = value
    return flat


def parse_keymap(text: str, known: frozenset[str], source: str) -> dict[str, str]:
    """The keymap in `text`, checked against the `known` binding ids."""
    import tomllib

    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        reason = " ".join(str(exc).split())
        raise UsageError(f"{source}: not valid TOML: {reason}") from None
    keymap: dict[str, str] = {}
    for binding_id, value in sorted(_flatten(table).items()):
        if binding_id not in known:
            import difflib

            near = difflib.get_close_matches(binding_id, sorted(known), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise UsageError(f"{source}: unknown binding id {binding_id!r}{hint}")
        if not isinstance(value, str):
            raise UsageError(f'{source}: {binding_id}: keys must be a string like "ctrl+s,f2"')
        keys = [k.strip() for k in value.split(",")]
        bad = [k for k in keys if not _KEY.match(k)]
        if bad or not keys:
            shown = bad[0] if bad else value
            raise UsageError(f"{source}: {binding_id}: {shown!r} is not a key name")
        keymap[binding_id] = ",".join(keys)
    return keymap


def load_user_keymap(path: Path | None = None) -> dict[str, str]:
    """The user's keymap, or {} when there is no file."""
    path = path or keymap_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    return parse_keymap(text, binding_ids(), str(path))
