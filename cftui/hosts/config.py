"""`[hosts.NAME]` tables of fleet.toml: a name and an `ssh://user@server[:port]`.

`local` (this machine's engine) always exists and is never written. Every
field is checked here, once, before any connection is tried: the URL's user
and server end up on an SSH command line and in error messages, so only
plain names pass (no option-looking `-x`, no spaces, no password).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from cftui.errors import FleetError

LOCAL = "local"
HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$", re.IGNORECASE)
# A DNS name or an IPv4 address (an IPv6 one in brackets).
_SERVER_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])$")
_URL_RE = re.compile(
    r"^ssh://(?P<user>[^@/:]+)@(?P<server>\[[^\]]*\]|[^:/@]+)(?::(?P<port>[^/]*))?/?$"
)
# Where a host keeps its bots' trees and its engine's socket, unless told.
DEFAULT_ROOT = "/var/lib/clawfactory"
DEFAULT_SOCKET = "/var/run/docker.sock"
HOST_KEYS = ("url", "root", "docker_socket")


@dataclass(frozen=True)
class HostConfig:
    """One host of the fleet; `local` has no URL."""

    name: str
    url: str = ""
    user: str = ""
    server: str = ""
    port: int = 22
    root: str = DEFAULT_ROOT
    docker_socket: str = DEFAULT_SOCKET

    @property
    def is_local(self) -> bool:
        return self.name == LOCAL

    def kill_marker(self, bot: str) -> str:
        """The kill switch's marker of `bot` on this host: written by every
        kill, so that nothing there brings the bot back (the lock itself
        stays on the operator's machine)."""
        from cftui.hosts.layout import HostLayout

        return str(HostLayout.of(self).kill_marker(bot))

    @property
    def address(self) -> str:
        """The server as a socket wants it (IPv6 without brackets)."""
        return self.server.strip("[]")


LOCAL_HOST = HostConfig(name=LOCAL)


def parse_host_url(url: Any) -> tuple[str, str, int]:
    """(user, server, port) of `ssh://user@server[:port]`; ValueError (one line) otherwise."""
    if not isinstance(url, str):
        raise ValueError('url must be a string such as "ssh://ops@server2"')
    # The URL itself is never echoed: a password typed into it would be.
    if re.match(r"^ssh://[^@/]*:[^@/]*@", url):
        raise ValueError("url holds a password: cftui logs in with your SSH keys only")
    m = _URL_RE.fullmatch(url)
    if m is None:
        raise ValueError("url is not ssh://user@server[:port]")
    user, server, port_text = m["user"], m["server"], m["port"]
    if not _USER_RE.fullmatch(user):
        raise ValueError("url: the user must be a plain login name")
    if not _SERVER_RE.fullmatch(server) or server.startswith("-"):
        raise ValueError("url: the server must be a host name or an address")
    port = 22
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError("url: the port must be 1-65535")
        port = int(port_text)
    return user, server, port


def _abs_path(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise ValueError(f"{key} must be an absolute path on that host")
    parts = PurePosixPath(value).parts
    if ".." in parts or any(not p.isprintable() or p.strip() != p for p in parts):
        raise ValueError(f"{key} {value[:80]!r} must be a plain absolute path (no '..')")
    return str(PurePosixPath(value))


def parse_hosts(raw: Any) -> dict[str, HostConfig]:
    """Every host: `local` first, then the `[hosts.NAME]` tables in file
    order. FleetError (one line) for a bad name, URL, key or path."""
    out = {LOCAL: LOCAL_HOST}
    if raw is None:
        return out
    if not isinstance(raw, dict):
        raise FleetError(
            'fleet.toml: hosts must be tables, such as [hosts.server2] url = "ssh://ops@server2"'
        )
    for name, table in raw.items():
        shown = name if len(name) <= 40 else name[:40] + "…"
        where = f"fleet.toml: [hosts.{shown}]"
        if name == LOCAL:
            raise FleetError(f"{where}: 'local' is this machine, always there: give another name")
        if not HOST_NAME_RE.fullmatch(name):
            raise FleetError(
                f"{where}: a host name is 1-31 characters, a lowercase letter first, "
                "then lowercase letters, digits or '-'"
            )
        if not isinstance(table, dict):
            raise FleetError(f'{where} must be a table with url = "ssh://user@server[:port]"')
        unknown = sorted(set(table) - set(HOST_KEYS))
        if unknown:
            raise FleetError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(HOST_KEYS)})")
        if "url" not in table:
            raise FleetError(f'{where}: url = "ssh://user@server[:port]" is required')
        try:
            user, server, port = parse_host_url(table["url"])
            root = _abs_path("root", table.get("root", DEFAULT_ROOT))
            sock = _abs_path("docker_socket", table.get("docker_socket", DEFAULT_SOCKET))
        except ValueError as exc:
            raise FleetError(f"{where}: {exc}") from None
        out[name] = HostConfig(name, str(table["url"]), user, server, port, root, sock)
    return out
