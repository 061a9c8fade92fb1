"""The gateway's own configuration, `state/openclaw.json`.

OpenClaw reads it as JSON5 (comments, trailing commas), so we read JSON5 and
always write plain JSON, which every JSON5 reader accepts. Every write is
validated first, keeps the previous valid file as `openclaw.json.known-good`
(so a change that breaks the gateway can be reverted), replaces the file
atomically at 0600 and records a `config` event naming the changed keys,
never their values (the file holds the bot's proxy token).

`state/` is the gateway's to write, so the file and its known-good copy are
read and written only through `securefs`'s agent-tree helpers: a link, a
fifo or a hard link planted there is refused, never followed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cftui.audit.events import record_event
from cftui.errors import ConfigError, UsageError
from cftui.fleet import FleetHome
from cftui.gateway import approved
from cftui.gateway.format import CONFIG_NAME, dumps, parse_config, validate_config
from cftui.securefs import make_private_dirs, read_agent_file, write_agent_file

KNOWN_GOOD_SUFFIX = ".known-good"
KNOWN_GOOD_NAME = CONFIG_NAME + KNOWN_GOOD_SUFFIX
# OpenClaw's config is a few KiB; anything this large is not one.
CONFIG_MAX_BYTES = 8 << 20
SECRET_KEY_RE = re.compile(r"(?i)(api[_-]?key|token|secret|password|passwd|authorization)")
MASK = "********"


def config_path(home: FleetHome, bot: str) -> Path:
    return home.state_dir(bot) / CONFIG_NAME


def known_good_path(home: FleetHome, bot: str) -> Path:
    return home.state_dir(bot) / KNOWN_GOOD_NAME


def read_state_file(home: FleetHome, bot: str, relpath: str) -> bytes | None:
    """A JSON file of the gateway's `state/` (None when absent), read without
    following links; ConfigError when it cannot be read."""
    state = home.state_dir(bot)
    try:
        return read_agent_file(state, relpath, CONFIG_MAX_BYTES)
    except OSError as exc:
        raise ConfigError(f"cannot read {state / relpath}: {exc.strerror or exc}") from None


def write_state_file(home: FleetHome, bot: str, relpath: str, data: bytes | str) -> None:
    """Replace a file of `state/` at 0600, refusing links; ConfigError on failure."""
    state = home.state_dir(bot)
    try:
        write_agent_file(state, relpath, data)
    except OSError as exc:
        raise ConfigError(f"cannot write {state / relpath}: {exc.strerror or exc}") from None


def read_config(home: FleetHome, bot: str) -> dict[str, Any]:
    """The gateway's config as a dict; an empty dict when the file is absent."""
    path = config_path(home, bot)
    raw = read_state_file(home, bot, CONFIG_NAME)
    if raw is None:
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return parse_config(text, str(path))


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose values differ: what an event records instead of values."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(path)
            else:
                out += changed_keys(old[key], new[key], path)
        return out
    return [] if old == new else [prefix or "."]


def _parsed(raw: bytes | None) -> dict[str, Any] | None:
    """A current file's parsed form; None when it is absent or invalid."""
    if raw is None:
        return None
    try:
        return parse_config(raw.decode("utf-8"))
    except (ConfigError, UnicodeDecodeError):
        return None


def _current(home: FleetHome, bot: str) -> tuple[bytes | None, dict[str, Any] | None]:
    """The raw current file and its parsed form (None when absent or invalid)."""
    raw = read_state_file(home, bot, CONFIG_NAME)
    return raw, _parsed(raw)


@dataclass(frozen=True)
class Replacement:
    """What writing a new config takes: the files of `state/` to write, in
    order (the previous valid config as known-good first), and the keys
    that change, which the `config` event names."""

    files: tuple[tuple[str, bytes | str], ...]
    changed: tuple[str, ...]
    before: dict[str, Any]
    after: dict[str, Any]


def replacement(raw: bytes | None, data: dict[str, Any]) -> Replacement | None:
    """How `data` replaces the current file `raw` (None: absent); None when
    it is what is there already, so a runtime may write before every start.

    The one decision every writer of `openclaw.json` follows, whichever
    runtime holds the file."""
    validate_config(data)
    current = _parsed(raw)
    if current is not None and current == data:
        return None
    files: list[tuple[str, bytes | str]] = []
    if raw is not None and current is not None:
        files.append((KNOWN_GOOD_NAME, raw))
    files.append((CONFIG_NAME, dumps(data)))
    before = current or {}
    return Replacement(tuple(files), tuple(changed_keys(before, data)[:50]), before, data)


def record_replacement(
    home: FleetHome, bot: str, done: Replacement, *, reason: str, actor: str
) -> None:
    """What follows a written replacement: the approved version moves with
    it (cftui's writes are the operator's), and a `config` event names the
    changed keys, never their values."""
    approved.record_write(home, bot, done.before, done.after)
    record_event(home, "config", bot, reason=reason, actor=actor, changed=list(done.changed))


def write_config(
    home: FleetHome, bot: str, data: dict, *, reason: str, actor: str = "operator"
) -> None:
    """Validate and write the config; keep the previous valid one as known-good.

    Writing what is already there changes nothing and records nothing, so a
    runtime may call this before every start.
    """
    todo = replacement(read_state_file(home, bot, CONFIG_NAME), data)
    if todo is not None:
        write_replacement(home, bot, todo, reason=reason, actor=actor)


def write_replacement(
    home: FleetHome, bot: str, todo: Replacement, *, reason: str, actor: str
) -> None:
    """Write a replacement into the host's `state/` and record it."""
    make_private_dirs(config_path(home, bot).parent)
    # Both files go to the owner of state/ (the gateway's user once it ran).
    for name, content in todo.files:
        write_state_file(home, bot, name, content)
    record_replacement(home, bot, todo, reason=reason, actor=actor)


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """`a.b.c=VALUE` with VALUE read as JSON (`true`, `3`, `"x"`, `[1]`) or, if it
    is a bare word, as a string. Malformed JSON is refused, not stored as text."""
    key, sep, value = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not key.strip() or any(not p for p in parts):
        raise UsageError(f"--set {text!r}: use KEY=VALUE with a dotted key like models.mode=merge")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        if value[:1] in ("{", "[", '"'):
            raise UsageError(f"--set {key}: {value!r} is not valid JSON") from None
        parsed = value
    return parts, parsed


def set_keys(
    home: FleetHome, bot: str, assignments: list[str], *, actor: str = "operator"
) -> list[str]:
    """Apply `KEY=VALUE` assignments in one validated write; returns changed keys."""
    parsed = [parse_assignment(a) for a in assignments]
    data = read_config(home, bot)
    before = json.loads(json.dumps(data))
    for parts, value in parsed:
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise UsageError(f"--set {'.'.join(parts)}: {where} is not an object")
            node = child
        node[parts[-1]] = value
    changed = changed_keys(before, data)
    if changed:
        write_config(home, bot, data, reason="set " + ", ".join(changed)[:200], actor=actor)
    return changed


def show(home: FleetHome, bot: str, *, reveal: bool = False) -> str:
    """The config as JSON text, with credentials masked unless `reveal`."""
    data = read_config(home, bot)
    return dumps(data if reveal else mask_secrets(data))


def mask_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: MASK if SECRET_KEY_RE.search(k) and isinstance(v, str) and v else mask_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def edit(home: FleetHome, bot: str, editor: str | None = None, *, actor: str = "operator") -> bool:
    """Open the config in `$EDITOR`; write it back only if it is valid and changed.

    Returns whether anything was written. The temporary copy is 0600 beside
    the bot's repo (not in /tmp) and is removed whatever happens.
    """
    command = editor or os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    path = config_path(home, bot)
    raw, current_data = _current(home, bot)
    text = raw.decode("utf-8", "replace") if raw is not None else "{}\n"
    make_private_dirs(home.bot_repo(bot))
    fd, tmp = tempfile.mkstemp(dir=home.bot_repo(bot), prefix=".openclaw-edit-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            proc = subprocess.run([*shlex.split(command), tmp], check=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot run editor {command!r}: {exc}") from None
        if proc.returncode != 0:
            raise ConfigError(f"editor {command!r} exited {proc.returncode}: nothing changed")
        edited = Path(tmp).read_text(encoding="utf-8", errors="replace")
        if edited == text:
            return False
        try:
            data = parse_config(edited, "the edited config")
        except ConfigError as exc:
            raise ConfigError(f"{exc}; {path} left unchanged") from None
        before = read_config(home, bot) if current_data is not None else {}
        if before == data and current_data is not None:
            return False
        write_config(home, bot, data, reason="edit", actor=actor)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def revert(home: FleetHome, bot: str, *, actor: str = "operator") -> None:
    """Bring back the known-good config; the replaced one (if valid) becomes the
    known-good in turn, so a revert can itself be reverted."""
    good = known_good_path(home, bot)
    raw = read_state_file(home, bot, KNOWN_GOOD_NAME)
    if raw is None:
        raise ConfigError(f"no known-good config to revert to ({good} does not exist)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {good}: {exc}") from None
    data = parse_config(text, str(good))
    _raw, current = _current(home, bot)
    if current == data:
        raise ConfigError(f"{config_path(home, bot)} is already the known-good config")
    write_config(home, bot, data, reason="revert", actor=actor)
