"""The fast status path's choices and its engine-down line, without an
engine: which `DOCKER_HOST` it reads itself (`engine_socket.local_socket`),
and that an engine that is not there reads as the SDK path says it, word for
word (the same one line, every bot `unknown`)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from cftui import fleet_view, lifecycle
from cftui.cli.fleet_cmds import _status_json
from cftui.fleet import FleetHome
from cftui.runtime import Runtimes
from cftui.runtime.docker.engine_socket import DEFAULT_SOCKET, local_socket


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, DEFAULT_SOCKET),
        ({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, "/run/user/1000/docker.sock"),
        ({"DOCKER_HOST": "http+unix:///var/run/docker.sock"}, "/var/run/docker.sock"),
        ({"DOCKER_HOST": "unix://relative.sock"}, None),
        ({"DOCKER_HOST": "tcp://127.0.0.1:2375"}, None),
        ({"DOCKER_HOST": "ssh://ops@server2"}, None),
        ({"DOCKER_HOST": "unix:///var/run/docker.sock", "DOCKER_TLS_VERIFY": "1"}, None),
        ({"DOCKER_CONTEXT": "remote"}, None),
        ({"DOCKER_CONTEXT": "default"}, DEFAULT_SOCKET),
    ],
)
def test_the_fast_path_reads_only_the_socket_the_sdk_would(
    env: dict[str, str], expected: str | None, tmp_path: Path
) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path), **env}  # no CLI config of the machine's
    assert local_socket(env) == expected


def test_a_docker_cli_context_leaves_the_choice_to_the_sdk(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "colima"}))
    assert local_socket({"DOCKER_CONFIG": str(tmp_path)}) is None
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "default"}))
    assert local_socket({"DOCKER_CONFIG": str(tmp_path)}) == DEFAULT_SOCKET
    (tmp_path / "config.json").write_text("{not json")
    assert local_socket({"DOCKER_CONFIG": str(tmp_path)}) == DEFAULT_SOCKET


def _full(home: FleetHome) -> tuple[dict, list[str]]:
    bots = list(home.bots().values())

    async def go() -> tuple[dict, list[str]]:
        runtimes = Runtimes(home)
        try:
            return await lifecycle.fleet_status(home, bots, runtimes)
        finally:
            await runtimes.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("engine", ["missing", "refusing"])
def test_an_engine_that_is_not_there_reads_as_the_sdk_path_says(
    engine: str, home: FleetHome, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "docker.sock"
    listener = None
    if engine == "refusing":  # a socket file nobody listens on: ECONNREFUSED
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
        listener.close()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    for name in ("bot1", "bot2"):
        assert cli("init", name).code == 0
    bots = list(home.bots().values())
    got = fleet_view.read_now(home, bots)
    assert got is not None
    fast, fast_errors = got
    full, full_errors = _full(home)
    assert fast_errors == full_errors and len(fast_errors) == 1
    assert "the Docker engine is not reachable" in fast_errors[0]
    for bot in bots:
        assert _status_json(bot, fast[bot.name]) == _status_json(bot, full[bot.name])
        assert fast[bot.name].state == "unknown"
    # The command: the table from fleet.toml, and the one line once.
    r = cli("list")
    assert r.code == 0 and r.err.count("\n") == 1 and fast_errors[0] in r.err
    assert [line.split()[3] for line in r.out.splitlines()[1:]] == ["unknown", "unknown"]


def test_a_lima_bot_takes_the_full_path(home: FleetHome, cli) -> None:
    assert cli("init", "bot1").code == 0
    assert cli("init", "vm1", "--runtime", "lima").code == 0
    assert fleet_view.read_now(home, list(home.bots().values())) is None
    assert fleet_view.read_now(home, [home.bot("bot1")]) is not None


def test_an_engine_that_does_not_answer_is_given_up_on_after_the_timeout_asked(
    home: FleetHome, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TUI's first look (its rows wait for it) asks for a short
    timeout: an engine that takes the connection and says nothing reads as
    one line saying it timed out, not the client's minute. Here the engine
    hangs up after a few seconds, which a read without the timeout would
    wait for and report otherwise."""
    path = tmp_path / "docker.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert cli("init", "bot1").code == 0

    def hang_up_later() -> None:
        conn, _ = listener.accept()
        time.sleep(5)
        conn.close()

    threading.Thread(target=hang_up_later, daemon=True).start()
    try:
        got = fleet_view.read_now(home, [home.bot("bot1")], brief=True, timeout=0.2)
    finally:
        listener.close()
    assert got is not None
    statuses, errors = got
    assert len(errors) == 1 and "timed out" in errors[0], errors
    assert statuses["bot1"].state == "unknown"


def test_an_answer_not_of_the_engines_shape_is_one_line_not_a_traceback(
    home: FleetHome, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket that answers every GET with JSON of another shape (a proxy,
    another daemon at DOCKER_HOST): `cftui list` shows the fleet from
    fleet.toml and says so in one line, as for an engine that is down; the
    TUI's first look, which reads the same way, is then left out."""
    path = tmp_path / "docker.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert cli("init", "bot1").code == 0
    body = b'{"Id": 7, "not": ["the", "engine"]}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def answer_everything() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while conn.recv(65536):
                    conn.sendall(answer)

    threading.Thread(target=answer_everything, daemon=True).start()
    try:
        got = fleet_view.read_now(home, [home.bot("bot1")], brief=True)
        r = cli("list")
    finally:
        listener.close()
    assert got is not None
    statuses, errors = got
    assert len(errors) == 1 and "not of the Engine API's shape" in errors[0], errors
    assert statuses["bot1"].state == "unknown"
    assert r.code == 0 and r.err.count("\n") == 1 and errors[0] in r.err
    assert "Traceback" not in r.err
    assert r.out.splitlines()[1].split()[3] == "unknown"
