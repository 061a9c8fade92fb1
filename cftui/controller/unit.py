"""`cftui serve --install-unit`: a systemd user unit that runs this very
controller (same interpreter, same home, same flags) and restarts it if it
dies. One unit per fleet home: the default home's is `cftui-serve.service`,
another's carries a short hash of its path."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cftui.fleet import FleetHome, default_home
from cftui.securefs import atomic_write_private


def unit_name(home: FleetHome) -> str:
    if home.root.resolve() == default_home().resolve():
        return "cftui-serve.service"
    digest = hashlib.sha256(str(home.root.resolve()).encode()).hexdigest()[:8]
    return f"cftui-serve-{digest}.service"


def unit_dir() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "systemd" / "user"


def _quote(arg: str) -> str:
    """One ExecStart word, quoted as systemd reads it (and `%` doubled,
    its specifier character)."""
    arg = arg.replace("%", "%%")
    if arg and all(c.isalnum() or c in "-_./:=@+," for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_text(home: FleetHome, serve_args: Sequence[str], python: str = sys.executable) -> str:
    root = str(home.root.resolve())
    argv = [python, "-m", "cftui", "serve", "--home", root, *serve_args]
    return (
        "[Unit]\n"
        f"Description=ClawFactory controller for {root.replace('%', '%%')}\n"
        "After=network-online.target docker.service\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={' '.join(_quote(a) for a in argv)}\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "KillSignal=SIGTERM\n"
        "TimeoutStopSec=30\n"
        "UMask=0077\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def install(home: FleetHome, serve_args: Sequence[str], directory: Path | None = None) -> Path:
    """Write the unit; returns its path (the caller says how to enable it)."""
    folder = directory or unit_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / unit_name(home)
    atomic_write_private(path, unit_text(home, serve_args))
    return path
