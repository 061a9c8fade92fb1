"""A real terminal for the tests: a tmux session whose screen is read with
`capture-pane` (the TUI end-to-end tests, `cftui shell` in a terminal).

With `socket`, the session lives on a tmux server of its own (`tmux -L`),
which `close` ends; without, on the user's default server, and `close`
ends only the session."""

from __future__ import annotations

import subprocess
import time


class Tmux:
    def __init__(self, name: str, socket: str | None = None) -> None:
        self.name = name
        self.socket = socket

    def run(self, *args: str) -> str:
        server = ["-L", self.socket] if self.socket else []
        return subprocess.run(
            ["tmux", *server, *args], check=True, capture_output=True, text=True
        ).stdout

    def start(self, command: str, width: int, height: int, env: list[str]) -> None:
        """The session running `command` in a `width`x`height` terminal.
        `env` (NAME=VALUE) is set on the session itself: a tmux server that
        is already up gives new sessions its own environment, not ours."""
        options = ["-x", str(width), "-y", str(height), *(x for e in env for x in ("-e", e))]
        self.run("new-session", "-d", "-s", self.name, *options, command)

    def close(self) -> None:
        server = ["-L", self.socket, "kill-server"] if self.socket else []
        args = server or ["kill-session", "-t", self.name]
        subprocess.run(["tmux", *args], capture_output=True)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.name)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.name, *keys)

    def wait_for(self, text: str, timeout: float = 20.0, poll: float = 0.1) -> str:
        """The screen once `text` is on it; fails with the screen after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(poll)
        raise AssertionError(f"{text!r} never appeared on screen:\n{self.screen()}")

    def wait_cursor_on(self, text: str, timeout: float = 10.0) -> None:
        """Wait for the terminal cursor to sit on a line holding `text`: a
        focused Input puts it there. Keys sent before focus lands (Textual
        moves focus a moment after the key) would go to the old widget."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            y = int(self.run("display", "-p", "-t", self.name, "#{cursor_y}"))
            lines = self.screen().splitlines()
            if y < len(lines) and text in lines[y]:
                return
            time.sleep(0.05)
        raise AssertionError(f"the cursor never reached {text!r}:\n{self.screen()}")

    def alive(self) -> bool:
        server = ["-L", self.socket] if self.socket else []
        has = subprocess.run(["tmux", *server, "has-session", "-t", self.name], capture_output=True)
        return has.returncode == 0
