"""Issue 15, "the host is reachable from the internal network": a container
on a bot's internal network must not open a connection to the host, even to
a service bound to the bridge's own address; the host's own probes of the
stack's containers must still get their answers.

The network is the one the runtime makes (`DockerRuntime._ensure_infra`); the
test's listener is bound to that bridge's address only, and the probe is a
throwaway container, run as the gateway runs (uid 1000, no capabilities),
from an image already built here.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cftui.errors import RuntimeOperationError
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime.docker import firewall as docker_firewall
from cftui.runtime.docker.runtime import DockerRuntime
from cftui.runtime.docker.spec import int_network
from cftui.runtime.images import catalog, engine

LABEL = "io.clawfactory.test"
PROBE = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
    "except OSError as exc:\n"
    "    print('refused:', exc); sys.exit(42)\n"
    "print('connected')\n"
)


@pytest.fixture
def infra(docker_client: Any, tmp_path: Path) -> Iterator[tuple[DockerRuntime, BotConfig]]:
    """A bot's networks and volumes as the runtime makes them, removed after."""
    if engine.image_labels(docker_client, catalog.BASE_IMAGE) is None:
        pytest.fail(f"{catalog.BASE_IMAGE} is not built: run scripts/build-images.sh")
    rt = DockerRuntime(FleetHome(tmp_path / "home"), client=docker_client)
    bot = BotConfig(name=f"th{secrets.token_hex(4)}", gateway="generic")
    try:
        rt._ensure_infra(bot)
        yield rt, bot
    finally:
        for c in docker_client.containers.list(all=True, filters={"label": LABEL}):
            if c.labels.get(LABEL) == bot.name:
                with contextlib.suppress(Exception):
                    c.remove(force=True)
        rt._remove(bot.name)
        rt._pool.shutdown(wait=False)


def _bridge_address(docker_client: Any, bot: BotConfig) -> str:
    net = docker_client.api.inspect_network(int_network(bot.name))
    return net["IPAM"]["Config"][0]["Gateway"]


def _run(docker_client: Any, bot: BotConfig, *cmd: str, **kwargs: Any) -> Any:
    return docker_client.containers.run(
        catalog.BASE_IMAGE,
        list(cmd),
        detach=True,
        network=int_network(bot.name),
        user="1000:1000",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        labels={LABEL: bot.name},
        **kwargs,
    )


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_host_reach_a_container_on_the_internal_network_cannot_connect_to_the_host(
    docker_client, infra
):
    _, bot = infra
    address = _bridge_address(docker_client, bot)
    listener = socket.socket()
    listener.bind((address, 0))  # this bridge's address only, nothing else
    listener.listen(4)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        probe = _run(docker_client, bot, "python3", "-c", PROBE, address, str(port))
        status = probe.wait(timeout=60)["StatusCode"]
        output = probe.logs().decode(errors="replace").strip()
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    assert status == 42, f"the probe reached the host: {output}"


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_host_reach_the_host_still_reaches_the_stack_on_the_internal_network(docker_client, infra):
    """The runtime's health probes connect from the host to the services'
    internal addresses: their answers must still come back."""
    _, bot = infra
    server = _run(docker_client, bot, "python3", "-m", "http.server", "8000")
    try:
        server.reload()
        ip = server.attrs["NetworkSettings"]["Networks"][int_network(bot.name)]["IPAddress"]
        for _ in range(100):
            try:
                socket.create_connection((ip, 8000), timeout=1).close()
                break
            except OSError:
                server.reload()
                assert server.status in ("created", "running"), server.logs()
                time.sleep(0.2)
        else:
            pytest.fail(f"the host cannot reach {ip}:8000 on the internal network")
    finally:
        server.remove(force=True)


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_host_reach_rules_are_added_once_and_removed_with_the_bot(docker_client, infra):
    rt, bot = infra
    if docker_firewall.engine_isolates(docker_client.api):
        options = docker_client.api.inspect_network(int_network(bot.name))["Options"]
        assert options.items() >= docker_firewall.ISOLATED_OPTIONS.items()
        return
    rt._ensure_infra(bot)  # a second start: nothing added
    what = "test"
    tools = docker_firewall._tools(docker_firewall.LOCAL)
    for tool in tools:
        rules = docker_firewall._tagged(docker_firewall.LOCAL, tool, bot.name, what)
        iface = docker_firewall.bridge_interface(
            docker_client.api.inspect_network(int_network(bot.name))
        )
        assert [i for i, _ in rules] == [iface], (tool, rules)
    rt._remove(bot.name)
    for tool in tools:
        assert docker_firewall._tagged(docker_firewall.LOCAL, tool, bot.name, what) == []


@pytest.mark.docker
def test_host_reach_a_missing_or_refusing_iptables_is_one_clear_line(
    docker_client, infra, tmp_path, monkeypatch
):
    if docker_firewall.engine_isolates(docker_client.api):
        pytest.skip("this engine isolates internal networks itself: iptables is not used")
    _, bot = infra
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(RuntimeOperationError) as exc:
        docker_firewall.isolate_host(docker_client.api, bot.name, int_network(bot.name))
    assert "\n" not in str(exc.value)
    assert "iptables is not installed" in str(exc.value)
    # An iptables that refuses (as it does for a non-root operator).
    refusing = empty / "iptables"
    refusing.write_text(
        "#!/bin/sh\necho 'iptables v1.8.9: Permission denied (you must be root)' >&2\nexit 4\n"
    )
    refusing.chmod(0o755)
    (empty / "ip6tables").symlink_to(refusing)
    with pytest.raises(RuntimeOperationError) as exc:
        docker_firewall.isolate_host(docker_client.api, bot.name, int_network(bot.name))
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"cannot keep {int_network(bot.name)} off the host: iptables refused")
    assert "Permission denied" in message
