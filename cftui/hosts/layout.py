"""Where a bot's files live on a remote host: the one place that names them.

A host's `root` (fleet.toml `[hosts.NAME] root`, /var/lib/clawfactory by
default) holds, for each bot that runs there, what its containers mount and
nothing more:

    <root>/bot_repos/<bot>/code         the approved tree (read-only in the gateway)
    <root>/bot_repos/<bot>/state        the gateway's state
    <root>/proposals/<bot>/             the proposals work tree (the gateway's /proposals)
    <root>/audit/<bot>/                 what the proxies write (traffic.jsonl, capture)
    <root>/secrets/<bot>/gateway.env    0600 in 0700
    <root>/secrets/<bot>/providers.env  0600 in 0700
    <root>/locks/<bot>.killed           the kill switch's marker (the host reads it)

The host never holds a bot's identity: no `snapshot.key`, no capture
identity (only its public recipient, on the egress proxy's command line).
Every caller that places, reads or mounts a remote bot's files (the start,
the proposals mirror, the audit mirror, snapshots, `cftui move`) takes its
paths from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol


class _Rooted(Protocol):
    @property
    def root(self) -> str: ...


SECRET_FILES = ("gateway.env", "providers.env")


def _one_part(bot: str) -> str:
    """The bot's name as one path component (fleet.toml validated it; this
    only makes sure no name ever steps out of the root)."""
    if not bot or "/" in bot or bot in (".", "..") or "\0" in bot:
        raise ValueError(f"{bot[:40]!r} is not a bot name")
    return bot


@dataclass(frozen=True)
class HostLayout:
    """The paths of a host's bots under its root (POSIX paths on that host)."""

    root: PurePosixPath

    @classmethod
    def of(cls, host: _Rooted) -> HostLayout:
        """The layout under a host's `root` (a `HostConfig`)."""
        return cls(PurePosixPath(host.root))

    def bot_repo(self, bot: str) -> PurePosixPath:
        return self.root / "bot_repos" / _one_part(bot)

    def code_dir(self, bot: str) -> PurePosixPath:
        return self.bot_repo(bot) / "code"

    def state_dir(self, bot: str) -> PurePosixPath:
        return self.bot_repo(bot) / "state"

    def proposals_dir(self, bot: str) -> PurePosixPath:
        return self.root / "proposals" / _one_part(bot)

    def audit_dir(self, bot: str) -> PurePosixPath:
        return self.root / "audit" / _one_part(bot)

    def traffic_log(self, bot: str) -> PurePosixPath:
        return self.audit_dir(bot) / "traffic.jsonl"

    def secrets_dir(self, bot: str) -> PurePosixPath:
        return self.root / "secrets" / _one_part(bot)

    def gateway_env(self, bot: str) -> PurePosixPath:
        return self.secrets_dir(bot) / "gateway.env"

    def providers_env(self, bot: str) -> PurePosixPath:
        return self.secrets_dir(bot) / "providers.env"

    def kill_marker(self, bot: str) -> PurePosixPath:
        return self.root / "locks" / f"{_one_part(bot)}.killed"
