"""The controller's part of `fleet.toml`, parsed once at start into frozen
values (a bad entry is one line naming it, before anything runs):

```toml
[controller]
listen = "127.0.0.1:8790"                # `--listen` wins
notify = ["https://hooks.example/cf"]    # added to `--notify`

[bots.bot1.controller]
snapshot_every = "1h"      # "30m", "6h", "1d", "1w", "@hourly", "@daily", "@weekly"; absent: none
keep_hourly = 24           # scheduled snapshots kept (manual ones never pruned)
keep_daily = 7
keep_weekly = 4
promote_remote = "origin"  # the remote a GitHub webhook promotes from
promote_branch = "main"    # default: the approved branch of code/
watchdog = true            # restart a crashed gateway
max_restarts = 3           # then leave it down and report
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cftui.errors import FleetError, UsageError
from cftui.fleet import FleetHome
from cftui.humanize import parse_duration

DEFAULT_LISTEN = "127.0.0.1:8790"
_ALIASES = {"@hourly": 3600, "@daily": 86400, "@weekly": 7 * 86400}
MIN_INTERVAL_S = 60
_REMOTE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_BRANCH_RE = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")


@dataclass(frozen=True)
class Keep:
    """How many scheduled snapshots to keep per hour, day and ISO week."""

    hourly: int = 24
    daily: int = 7
    weekly: int = 4


@dataclass(frozen=True)
class BotSettings:
    name: str
    snapshot_every_s: int | None = None
    keep: Keep = field(default_factory=Keep)
    promote_remote: str = "origin"
    promote_branch: str | None = None
    watchdog: bool = True
    max_restarts: int = 3


@dataclass(frozen=True)
class Settings:
    listen: str | None = None
    notify: tuple[str, ...] = ()
    bots: dict[str, BotSettings] = field(default_factory=dict)

    def bot(self, name: str) -> BotSettings:
        return self.bots.get(name) or BotSettings(name)


def parse_interval(value: str) -> int:
    """Seconds of "30m", "1h", "1d", "1w" or "@hourly"/"@daily"/"@weekly"."""
    if value in _ALIASES:
        return _ALIASES[value]
    seconds = parse_duration(value)
    if seconds is None:
        raise ValueError(
            f'snapshot_every {value!r}: use a number and s, m, h, d or w ("1h", "30m") '
            "or @hourly, @daily, @weekly"
        )
    if seconds < MIN_INTERVAL_S:
        raise ValueError(f"snapshot_every {value!r}: at least {MIN_INTERVAL_S} s")
    return seconds


def parse_listen(value: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 in brackets); UsageError otherwise."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen {value!r}: use HOST:PORT, such as {DEFAULT_LISTEN}")
    return host, int(port)


def check_url(url: str) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise UsageError(f"notify URL {url!r}: use http://HOST[:PORT]/PATH or https://…")
    return url


def _count(raw: dict[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10_000:
        raise ValueError(f"{key} must be a whole number from 0 to 10000")
    return value


def _bot_settings(name: str, raw: Any) -> BotSettings:
    if not isinstance(raw, dict):
        raise ValueError("must be a table")
    every = raw.get("snapshot_every")
    if every is not None and not isinstance(every, str):
        raise ValueError('snapshot_every must be a string such as "1h"')
    remote = raw.get("promote_remote", "origin")
    if not isinstance(remote, str) or not _REMOTE_RE.fullmatch(remote):
        raise ValueError(f"promote_remote {remote!r} is not a git remote name")
    branch = raw.get("promote_branch")
    if branch is not None and (
        not isinstance(branch, str)
        or not _BRANCH_RE.fullmatch(branch)
        or ".." in branch
        or branch.startswith("-")
    ):
        raise ValueError(f"promote_branch {branch!r} is not a branch name")
    watchdog = raw.get("watchdog", True)
    if not isinstance(watchdog, bool):
        raise ValueError("watchdog must be true or false")
    return BotSettings(
        name=name,
        snapshot_every_s=parse_interval(every) if every is not None else None,
        keep=Keep(
            _count(raw, "keep_hourly", Keep.hourly),
            _count(raw, "keep_daily", Keep.daily),
            _count(raw, "keep_weekly", Keep.weekly),
        ),
        promote_remote=remote,
        promote_branch=branch,
        watchdog=watchdog,
        max_restarts=_count(raw, "max_restarts", 3),
    )


def load(home: FleetHome) -> Settings:
    """The controller's settings from fleet.toml; FleetError naming the
    table for anything wrong."""
    doc = home.document()
    top = doc.get("controller", {})
    if not isinstance(top, dict):
        raise FleetError("fleet.toml: [controller] must be a table")
    listen = top.get("listen")
    notify = top.get("notify", [])
    try:
        if listen is not None:
            if not isinstance(listen, str):
                raise UsageError("listen must be a string HOST:PORT")
            parse_listen(listen)
        if not isinstance(notify, list) or not all(isinstance(u, str) for u in notify):
            raise UsageError("notify must be a list of URLs")
        urls = tuple(check_url(u) for u in notify)
    except UsageError as exc:
        raise FleetError(f"fleet.toml: [controller]: {exc}") from None
    bots: dict[str, BotSettings] = {}
    for name, table in dict(doc.get("bots", {})).items():
        raw = table.get("controller") if isinstance(table, dict) else None
        if raw is None:
            continue
        try:
            bots[name] = _bot_settings(name, raw)
        except ValueError as exc:
            raise FleetError(f"fleet.toml: [bots.{name}.controller]: {exc}") from None
    return Settings(listen=listen, notify=urls, bots=bots)
