"""`cftui logs` through the Docker runtime (issue #23): the agent's lines
with their control characters escaped, `--tail`, `--since`, bad input."""

from __future__ import annotations

import json
import secrets

import pytest

from cftui.fleet import FleetHome
from cftui.runtime.docker.spec import container_name

HOSTILE = (
    "import sys; sys.stdout.write('plain\\nred \\x1b[31mX\\x1b[0m bell\\x07 \\x1b]0;title\\x07\\n')"
)


@pytest.fixture
def logged_bot(home: FleetHome, cli, docker_client):
    """A bot whose gateway container printed hostile text and exited: the
    runtime's real log path, without starting a whole stack."""
    name = f"cflogs{secrets.token_hex(3)}"
    assert cli("init", name).code == 0
    container = docker_client.containers.run(
        "clawfactory/fake-llm:latest",
        entrypoint=["python", "-c", HOSTILE],
        name=container_name(name, "gateway"),
        labels={"cftest": "logs"},
        detach=True,
    )
    try:
        container.wait(timeout=60)
        yield name
    finally:
        container.remove(force=True)


def test_logs_escape_control_characters(logged_bot: str, cli) -> None:
    r = cli("logs", logged_bot)
    assert r.code == 0, r
    lines = r.out.strip().splitlines()
    assert [line.split("  ", 1)[1] for line in lines] == [
        "plain",
        "red \\x1b[31mX\\x1b[0m bell\\x07 \\x1b]0;title\\x07",
    ]
    assert "\x1b" not in r.out and "\x07" not in r.out
    assert lines[0][:4].isdigit() and lines[0][19] in ".Z"  # a UTC timestamp first
    r = cli("logs", logged_bot, "gateway", "--tail", "1")
    assert len(r.out.strip().splitlines()) == 1 and "red" in r.out


def test_logs_since_and_no_lines(logged_bot: str, cli) -> None:
    assert len(cli("logs", logged_bot, "--since", "1h").out.strip().splitlines()) == 2
    r = cli("logs", logged_bot, "--since", "2999-01-01")
    assert r.code == 0 and r.out == "" and "no log lines" in r.err
    r = cli("logs", logged_bot, "egress")  # no such container: nothing, said once
    assert r.code == 0 and r.out == "" and len(r.err.strip().splitlines()) == 1


def test_logs_bad_input_is_one_line_exit_2(logged_bot: str, cli) -> None:
    for args in (("nosvc",), ("--tail", "-1"), ("--since", "soon")):
        r = cli("logs", logged_bot, *args)
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r
    assert cli("logs", "nobot").code == 2


def test_logs_json_is_one_line_each_with_the_text_as_written(logged_bot: str, cli) -> None:
    r = cli("logs", logged_bot, "--json")
    assert r.code == 0, r
    assert "\x1b" not in r.out and "\x07" not in r.out  # JSON's escapes: inert on a terminal
    docs = [json.loads(line) for line in r.out.splitlines()]
    assert [d["text"] for d in docs] == ["plain", "red \x1b[31mX\x1b[0m bell\x07 \x1b]0;title\x07"]
    for d in docs:
        assert d["bot"] == logged_bot and d["service"] == "gateway"
        assert d["ts"].endswith("Z") and d["ts"][:4].isdigit()
    r = cli("logs", logged_bot, "--json", "--tail", "1")
    assert len(r.out.splitlines()) == 1 and "red" in json.loads(r.out)["text"]
