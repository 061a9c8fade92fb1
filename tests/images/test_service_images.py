"""The service images, run for real: who they run as, their healthchecks,
and that each does its job (front proxies HTTP and WebSocket upgrades, the
LLM proxy answers /health, the fake provider answers an Anthropic call, the
demo agent serves /health, calls its model and fails to reach out)."""

from __future__ import annotations

import json
import socket
import urllib.request
from typing import Any

import pytest

from cftui.runtime.gateway_uid import GATEWAY_GID, GATEWAY_UID
from cftui.runtime.images import base_image, catalog, services
from tests.images.imgkit import container_ip, published_port, wait_for

# The first test to ask for the images builds them all (base included) on a
# fresh machine: minutes, well past the default per-test timeout.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]


def _config(client: Any, ref: str) -> dict:
    return client.images.get(ref).attrs["Config"]


def _healthcheck_passes(container: Any) -> bool:
    """Run the image's own HEALTHCHECK command in the container."""
    test = container.image.attrs["Config"]["Healthcheck"]["Test"]
    kind, cmd = test[0], test[1:]
    if kind == "CMD-SHELL":
        cmd = ["/bin/sh", "-c", cmd[0]]
    return container.exec_run(cmd).exit_code == 0


def _get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        return resp.status, resp.read()


def _get_or_none(url: str) -> tuple[int, bytes] | None:
    try:
        return _get(url)
    except OSError:
        return None


def test_base_image_has_python_311_venv_pip_nginx_and_tini(docker_client, sandbox):
    base_image.ensure_base_image(docker_client)
    events: list = []
    base = base_image.ensure_base_image(docker_client, events.append)
    assert events == [], "an up-to-date base image was built again"
    out = docker_client.containers.run(
        base,
        [
            "sh",
            "-c",
            "python3 -c 'import sys, venv, ensurepip; print(sys.version_info[:2])'"
            " && python3 -m pip --version >/dev/null && nginx -v 2>&1 && tini --version"
            " && test -s /etc/ssl/certs/ca-certificates.crt && echo certs-ok",
        ],
        remove=True,
        network_mode="none",
    ).decode()
    assert "(3, 11)" in out
    assert "nginx version" in out
    assert "tini version" in out
    assert "certs-ok" in out


@pytest.mark.parametrize("service", sorted(catalog.SERVICE_IMAGES))
def test_service_image_runs_as_non_root_with_a_healthcheck(docker_client, service_images, service):
    config = _config(docker_client, service_images[service])
    user = config.get("User") or ""
    assert user and user.split(":")[0] not in ("0", "root"), f"{service} runs as {user!r}"
    assert config.get("Healthcheck", {}).get("Test"), f"{service} has no HEALTHCHECK"
    labels = config.get("Labels") or {}
    assert labels.get(catalog.HASH_LABEL)
    assert labels.get(catalog.SERVICE_LABEL) == service


def test_service_images_take_a_base_image_build_arg():
    for service, source in catalog.service_sources().items():
        declares, default = services.dockerfile_base_default(source.context / "Dockerfile")
        assert declares and default, f"{service}: no ARG BASE_IMAGE default"
        text = (source.context / "Dockerfile").read_text()
        assert "FROM ${BASE_IMAGE}" in text


def test_llm_proxy_container_answers_health(docker_client, service_images, sandbox):
    proxy = sandbox.run(
        service_images["llm-proxy"],
        "llm-proxy",
        environment={"CF_BOT": "imgtest"},
        ports={"9090/tcp": ("127.0.0.1", None)},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
    )
    port = published_port(proxy, "9090/tcp")
    status, body = wait_for(
        lambda: _get_or_none(f"http://127.0.0.1:{port}/health"), what="llm-proxy /health"
    )
    assert status == 200
    assert isinstance(json.loads(body), dict)
    assert _healthcheck_passes(proxy)
    assert proxy.exec_run(["id", "-u"]).output.strip() == b"10001"


def test_fake_llm_container_answers_an_anthropic_call(docker_client, service_images, sandbox):
    fake = sandbox.run(
        service_images["fake-llm"], "fake-llm", ports={"8080/tcp": ("127.0.0.1", None)}
    )
    port = published_port(fake, "8080/tcp")
    wait_for(lambda: _get_or_none(f"http://127.0.0.1:{port}/health"), what="fake-llm /health")
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/messages",
        method="POST",
        data=json.dumps(
            {
                "model": "claude-3-5-haiku-latest",
                "max_tokens": 32,
                "messages": [{"role": "user", "content": "hello"}],
            }
        ).encode(),
        headers={
            "content-type": "application/json",
            "x-api-key": "test-key",
            "anthropic-version": "2023-06-01",
        },
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["type"] == "message"
    assert body["content"][0]["type"] == "text" and body["content"][0]["text"]
    assert body["usage"]["output_tokens"] > 0
    assert _healthcheck_passes(fake)


def test_egress_container_runs_cf_egress_as_non_root_and_exports_its_ca(
    docker_client, service_images, sandbox
):
    from pyrage import x25519

    config = _config(docker_client, service_images["egress"])
    assert config["Cmd"][0] == "cf-egress"
    recipient = str(x25519.Identity.generate().to_public())
    egress = sandbox.run(
        service_images["egress"],
        "egress",
        network_mode="none",
        command=[
            "cf-egress",
            "--listen",
            "0.0.0.0:8888",
            "--bot",
            "imgtest",
            "--audit-dir",
            "/audit",
            "--confdir",
            "/confdir",
            "--recipient",
            recipient,
            "--capture",
            "off",
            "--ca-export",
            "/ca-public",
        ],
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
    )
    wait_for(lambda: _healthcheck_passes(egress), what="egress listening on 8888")
    assert egress.exec_run(["id", "-u"]).output.strip() == b"10001"
    assert egress.exec_run(["test", "-s", "/ca-public/ca.pem"]).exit_code == 0
    version = egress.exec_run(["mitmdump", "--version"]).output.decode()
    assert "Mitmproxy: 11.0.2" in version


_WS_ECHO = r"""
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 18789)); srv.listen(8)
while True:
    conn, _ = srv.accept()
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk: break
        head += chunk
    text = head.decode("latin-1").lower()
    if "upgrade: websocket" in text and "connection: upgrade" in text:
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        data = conn.recv(4096)
        conn.sendall(b"echo:" + data)
    else:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nplainok")
    conn.close()
"""


def test_front_proxies_http_and_websocket_upgrades_to_the_gateway(
    docker_client, service_images, sandbox
):
    net = sandbox.network("net")
    gateway = sandbox.run(
        base_image.ensure_base_image(docker_client), "gw", command=["python3", "-c", _WS_ECHO]
    )
    net.connect(gateway, aliases=["gateway"])
    front = sandbox.run(
        service_images["front"],
        "front",
        network=net.name,
        ports={"8080/tcp": ("127.0.0.1", None)},
        read_only=True,
        tmpfs={"/tmp": "rw,nosuid,nodev,size=16m"},
        cap_drop=["ALL"],
    )
    port = published_port(front, "8080/tcp")
    status, body = wait_for(
        lambda: _get_or_none(f"http://127.0.0.1:{port}/cf-front/health"), what="front health"
    )
    assert (status, body) == (200, b"ok\n")
    assert wait_for(lambda: _get_or_none(f"http://127.0.0.1:{port}/"), what="proxied GET") == (
        200,
        b"plainok",
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        sock.sendall(b"frame")
        assert sock.recv(4096) == b"echo:frame"
    assert _healthcheck_passes(front)
    assert front.exec_run(["id", "-u"]).output.strip() == b"10001"


def test_demo_agent_serves_health_calls_its_model_and_cannot_reach_out(
    docker_client, service_images, sandbox
):
    internal = sandbox.network("int", internal=True)
    outside = sandbox.network("out")
    fake = sandbox.run(service_images["fake-llm"], "fake-llm", network=outside.name)
    internal.connect(fake, aliases=["llm"])
    # The probe target is the same fake provider, at its address on the
    # other network: a server of the test's own the agent must not reach.
    probe_url = f"http://{container_ip(fake, outside)}:8080/health"
    agent = sandbox.run(
        service_images["demo-agent"],
        "agent",
        network=internal.name,
        environment={
            "CF_BOT": "imgtest",
            "DEMO_INTERVAL_S": "0.3",
            "DEMO_PROBE_TIMEOUT_S": "1",
            "ANTHROPIC_BASE_URL": "http://llm:8080",
            "ANTHROPIC_API_KEY": "proxy-token",
            "OPENAI_BASE_URL": "http://llm:8080/v1",
            "OPENAI_API_KEY": "proxy-token",
            "CF_DEMO_PROBE_URL": probe_url,
        },
        read_only=True,
        tmpfs={"/tmp": "", "/state": f"uid={GATEWAY_UID},gid={GATEWAY_GID}"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
    )

    def logs() -> str:
        return agent.logs().decode(errors="replace")

    wait_for(
        lambda: all(
            s in logs()
            for s in (
                "llm: anthropic call ok",
                "llm: anthropic stream call ok",
                "llm: openai call ok",
                "memory: appended to /state/memory/",
                f"probe: direct connection to {probe_url} failed, as it must",
            )
        ),
        timeout=45,
        what="the demo agent's calls, memory and blocked probe",
    )
    assert "CONTAINMENT BROKEN" not in logs()
    assert _healthcheck_passes(agent)
    for path in ("/health", "/healthz", "/readyz", "/"):
        res = agent.exec_run(
            [
                "python3",
                "-c",
                f"import urllib.request as u; print(u.urlopen('http://127.0.0.1:18789{path}').status)",
            ]
        )
        assert res.output.strip() == b"200", path
    memory = agent.exec_run(["sh", "-c", "cat /state/memory/*.md"]).output.decode()
    assert "cycle" in memory
    assert agent.exec_run(["id", "-u"]).output.strip() == str(GATEWAY_UID).encode()
    # The fake provider saw the agent's calls with the token it was given.
    seen = fake.exec_run(
        [
            "python3",
            "-c",
            "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/_fake/requests').read().decode())",
        ]
    ).output.decode()
    assert "/v1/messages" in seen


def test_demo_agent_stops_promptly_on_sigterm(docker_client, service_images, sandbox):
    agent = sandbox.run(
        service_images["demo-agent"],
        "agent",
        network_mode="none",
        environment={"DEMO_INTERVAL_S": "60"},
    )
    wait_for(lambda: "listening on" in agent.logs().decode(), what="agent start")
    agent.stop(timeout=10)
    agent.reload()
    assert agent.attrs["State"]["ExitCode"] == 0
    assert "shutting down" in agent.logs().decode()
