"""`cftui shell` through the Docker runtime (issue #23): a shell in the
service's container, its exit status passed on; bad input in one line."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from cftui.fleet import FleetHome
from cftui.runtime.docker.spec import container_name


@pytest.fixture
def running_bot(home: FleetHome, cli, docker_client):
    name = f"cfshell{secrets.token_hex(3)}"
    assert cli("init", name).code == 0
    container = docker_client.containers.run(
        "clawfactory/fake-llm:latest",
        entrypoint=["sleep", "300"],
        name=container_name(name, "llm-proxy"),
        labels={"cftest": "shell"},
        detach=True,
    )
    try:
        yield name
    finally:
        container.remove(force=True)


def test_shell_runs_in_the_container_and_passes_its_status(home: FleetHome, running_bot) -> None:
    env = {**os.environ, "CLAWFACTORY_HOME": str(home.root)}
    proc = subprocess.run(
        [sys.executable, "-m", "cftui", "shell", running_bot, "llm-proxy"],
        input="echo in-$(hostname)-$((6*7))\nexit 3\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert "-42" in proc.stdout and proc.stdout.startswith("in-")


def test_shell_bad_input_is_one_line(running_bot, cli) -> None:
    r = cli("shell", running_bot, "nosvc")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "unknown service" in r.err
    assert cli("shell", "nobot").code == 2
