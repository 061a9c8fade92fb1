"""`cftui demo`: a small fleet that works with no API key and no internet.

A demo home (`$XDG_DATA_HOME/clawfactory-demo` unless `--home` or
`CLAWFACTORY_HOME` names another) with two bots whose gateway is the demo
agent and whose LLM upstream is the fake provider, `cf-fake-llm`, running in
a container of its own on the `cf-demo` network. The Docker runtime attaches
each bot's LLM proxy to that network (it is named as an upstream), so real
LLM-proxy traffic flows; the demo agent's direct probe is aimed at the same
container's address, which its gateway, on an internal network, cannot
reach: containment shown with no byte leaving the machine. Through its
egress proxy the agent fetches the fake provider's health page now and then
(allowlisted: `cf-fake-llm` and its address, the egress being attached to
`cf-demo` for it) and an unlisted host (refused): the capture, the refusals
and the egress proposals have something to show.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from cfproxies.envfile import parse_env_text

from cftui import lifecycle
from cftui.botinit import init_bot
from cftui.errors import RuntimeOperationError, RuntimeUnavailable
from cftui.fleet import BotConfig, FleetHome
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime import Runtimes
from cftui.securefs import atomic_write_private

DEMO_BOTS = ("demo-ada", "demo-bob")
FAKE_LLM = "cf-fake-llm"
FAKE_LLM_PORT = 8080
DEMO_NETWORK = "cf-demo"
DEMO_LABEL = "io.clawfactory.demo"
PLACEHOLDER_KEY = "demo-placeholder-not-a-key"
# What the demo agent fetches through its egress proxy: one listed, one not.
DEMO_ALLOWED_URL = f"http://{FAKE_LLM}:{FAKE_LLM_PORT}/health"
DEMO_UNLISTED_URL = "http://unlisted.demo.example/fetch"
_READY_TIMEOUT_S = 60.0


def demo_home(explicit: str | None) -> FleetHome:
    """`--home`, else `$CLAWFACTORY_HOME`, else `$XDG_DATA_HOME/clawfactory-demo`:
    the demo never mixes its bots into the operator's own fleet by default."""
    if explicit:
        return FleetHome(explicit)
    if os.environ.get("CLAWFACTORY_HOME"):
        return FleetHome(os.environ["CLAWFACTORY_HOME"])
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return FleetHome(Path(xdg).expanduser() / "clawfactory-demo")


def _demo_agent_source() -> Any:
    return resources.files("cftui") / "templates" / "demo-agent"


@contextlib.contextmanager
def _provider_lock() -> Iterator[None]:
    """One process at a time makes the shared provider: the engine takes two
    networks of one name (`check_duplicate` is ignored since API 1.44), so
    two demo starts at once each made a `cf-demo`, and every later attach by
    name then failed. The provider is the engine's, not a home's: the lock
    is the machine's (a file in the temp dir, per user)."""
    import tempfile

    path = Path(tempfile.gettempdir()) / f"cftui-demo-provider-{os.getuid()}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def ensure_fake_llm(client: Any, progress: Progress = no_progress) -> str:
    """The fake provider's container, running on `cf-demo`; its address there.
    Blocking (docker SDK): call it in a thread."""
    from cftui.runtime.images import services

    image = services.ensure_image(client, "fake-llm", progress)
    with _provider_lock():
        return _ensure_provider_container(client, image)


def _ensure_provider_container(client: Any, image: str) -> str:
    import docker.errors

    from cftui.runtime.docker.health import http_status

    labels = {DEMO_LABEL: "1"}
    try:
        client.networks.get(DEMO_NETWORK)
    except docker.errors.NotFound:
        client.networks.create(DEMO_NETWORK, driver="bridge", labels=labels, check_duplicate=True)
    try:
        container = client.containers.get(FAKE_LLM)
        if container.image.id != client.images.get(image).id:
            container.remove(force=True)
            raise docker.errors.NotFound("stale image")
    except docker.errors.NotFound:
        container = client.containers.create(
            image,
            name=FAKE_LLM,
            network=DEMO_NETWORK,
            labels=labels,
            restart_policy={"Name": "unless-stopped"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"],
            init=True,
        )
    if container.status != "running":
        container.start()
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while True:
        container.reload()
        ip = container.attrs["NetworkSettings"]["Networks"].get(DEMO_NETWORK, {}).get("IPAddress")
        if ip and asyncio.run(http_status(ip, FAKE_LLM_PORT, "/health")) == 200:
            return ip
        if container.status in ("exited", "dead") or time.monotonic() > deadline:
            raise RuntimeOperationError(
                f"the fake LLM provider ({FAKE_LLM}) did not start: see `docker logs {FAKE_LLM}`"
            )
        time.sleep(0.2)


def _set_env_lines(path: Path, values: dict[str, str], *, only_empty: bool = False) -> None:
    """Set KEY=VALUE lines in an env file (0600), keeping the others."""
    text = path.read_text(encoding="utf-8")
    current = parse_env_text(text)
    lines = text.splitlines()
    for key, value in values.items():
        if only_empty and current.get(key):
            continue
        line = f"{key}={value}"
        for i, old in enumerate(lines):
            if old.strip().startswith(f"{key}="):
                lines[i] = line
                break
        else:
            lines.append(line)
    new = "\n".join(lines) + "\n"
    if new != text:
        atomic_write_private(path, new)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def demo_allowlist(current: Sequence[str], fake_llm_ip: str) -> list[str]:
    """The bot's allowlist with the fake provider's name and address (the
    egress reaches a name only at a public or listed address); an address
    the provider had before is dropped, the operator's own entries kept."""
    ours = f":{FAKE_LLM_PORT}"
    kept = [
        e
        for e in current
        if not (e.endswith(ours) and (e.startswith(FAKE_LLM) or _is_ip(e[: -len(ours)])))
    ]
    return [*kept, f"{FAKE_LLM}{ours}", f"{fake_llm_ip}{ours}"]


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def ensure_demo_bots(
    home: FleetHome,
    probe_url: str,
    names: Sequence[str] = DEMO_BOTS,
    fake_llm_ip: str | None = None,
) -> list:
    """The demo bots, made on first use; their probe aimed at `probe_url`,
    their egress allowlist holding the fake provider (`fake_llm_ip`, when given)."""
    upstream = f"http://{FAKE_LLM}:{FAKE_LLM_PORT}"
    existing = home.bots() if home.exists() else {}
    bots = []
    for name in names:
        if name not in existing:
            with resources.as_file(_demo_agent_source()) as src:
                made = init_bot(
                    home,
                    name,
                    code=str(src),
                    gateway="generic",
                    upstreams={p: upstream for p in ("anthropic", "openai", "gemini")},
                ).bot
            # The operator's own fleet may hold the usual ports: take free ones.
            port = made.gateway_port
            used = {b.gateway_port for b in home.bots().values() if b.name != name}
            while port in used or not _port_free(port):
                port += 1
            if port != made.gateway_port:
                home.update_bot(name, gateway_port=port)
        # The fake provider takes any key; the LLM proxy insists on having one.
        keys = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY")
        _set_env_lines(
            home.providers_env(name), dict.fromkeys(keys, PLACEHOLDER_KEY), only_empty=True
        )
        _set_env_lines(
            home.gateway_env(name),
            {
                "CF_DEMO_PROBE_URL": probe_url,
                "CF_DEMO_ALLOWED_URL": DEMO_ALLOWED_URL,
                "CF_DEMO_UNLISTED_URL": DEMO_UNLISTED_URL,
            },
        )
        if fake_llm_ip:
            allow = demo_allowlist(home.bot(name).egress_allow, fake_llm_ip)
            if allow != list(home.bot(name).egress_allow):
                home.update_bot(name, egress_allow=allow)
        bots.append(home.bot(name))
    return bots


async def start_demo(
    home: FleetHome, runtimes: Runtimes, progress: Progress = no_progress
) -> list[BotConfig]:
    """Build what is missing, start the fake provider and the demo bots."""
    runtime = runtimes.get("docker")
    await runtime.check()
    client = await asyncio.to_thread(runtime.client)  # type: ignore[attr-defined]  # the Docker runtime's own
    progress(ProgressEvent("demo", 0, 2, f"starting {FAKE_LLM}"))
    try:
        ip = await asyncio.to_thread(ensure_fake_llm, client, progress)
    except RuntimeUnavailable:
        raise
    except Exception as exc:
        if isinstance(exc, RuntimeOperationError):
            raise
        raise RuntimeOperationError(f"cannot start {FAKE_LLM}: {exc}") from None
    bots = ensure_demo_bots(home, f"http://{ip}:{FAKE_LLM_PORT}/health", fake_llm_ip=ip)
    progress(ProgressEvent("demo", 1, 2, "starting " + ", ".join(b.name for b in bots)))
    await asyncio.gather(*(lifecycle.start(home, b, runtimes, progress) for b in bots))
    progress(ProgressEvent("demo", 2, 2, "demo fleet up"))
    return bots
