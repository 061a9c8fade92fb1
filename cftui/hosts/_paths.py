"""Where a bot's files sit under a host's root, as far as the audit mirror,
remote snapshots and `move` need them: the host's root mirrors the fleet
home's relative paths (`bot_repos/<bot>/state`, `audit/<bot>/...`).

Private and temporary: the remote start's layout module is the one place
for this; these two names fold into it when both land.
"""

from __future__ import annotations

from cftui.hosts.config import HostConfig


def remote_state(host: HostConfig, bot: str) -> str:
    """`<root>/bot_repos/<bot>/state` on the host."""
    return f"{host.root}/bot_repos/{bot}/state"


def remote_audit(host: HostConfig, bot: str, name: str) -> str:
    """`<root>/audit/<bot>/<name>` on the host."""
    return f"{host.root}/audit/{bot}/{name}"
