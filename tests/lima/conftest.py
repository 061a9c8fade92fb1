"""Fixtures of the Lima runtime's tests: the stand-in VM image (built once,
tagged with the hash of its build script), a private LIMA_HOME, and one VM
running a demo-agent bot shared by a whole test module.

The stand-in `limactl` (standin/limactl) boots a Docker container running
systemd and sshd and provisions it with lima/'s own scripts; the runtime
under test is the real one, talking to it through limactl, SSH and rsync.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cftui.botinit import init_bot
from cftui.fleet import BotConfig, FleetHome
from cftui.runtime.lima.runtime import LimaRuntime
from cftui.securefs import atomic_write_private

HERE = Path(__file__).parent
STANDIN = HERE / "standin"
REPO = HERE.parents[1]
DEMO_AGENT = REPO / "cftui" / "templates" / "demo-agent"
# The fake provider runs inside the VM (as root, outside the bots' sandbox):
# the LLM proxy reaches it on loopback, the gateway cannot.
FAKE_LLM_PORT = 18600


# The first Lima test's setup boots and provisions the VM the session
# shares (`shared_vm`): minutes on a loaded machine, past the suite's 300 s.
VM_BOOT_TIMEOUT_S = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    first = next((item for item in items if item.path.is_relative_to(HERE)), None)
    if first is not None:
        marker = first.get_closest_marker("timeout")
        if marker is None or (marker.args and marker.args[0] < VM_BOOT_TIMEOUT_S):
            first.add_marker(pytest.mark.timeout(VM_BOOT_TIMEOUT_S), append=False)


def standin_image(docker_client) -> str:
    """`clawfactory/lima-standin:<hash>`, built by build-image.sh if missing."""
    digest = hashlib.sha256((STANDIN / "build-image.sh").read_bytes()).hexdigest()[:12]
    tag = f"clawfactory/lima-standin:{digest}"
    try:
        docker_client.images.get(tag)
        return tag
    except Exception:
        pass
    proc = subprocess.run(
        [str(STANDIN / "build-image.sh"), tag], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        pytest.fail(f"stand-in image build failed: {proc.stderr[-2000:]}")
    return tag


@pytest.fixture(scope="session")
def lima_env(docker_client, tmp_path_factory) -> Iterator[dict[str, str]]:
    """Environment for the stand-in: its limactl, its image, a private LIMA_HOME."""
    image = standin_image(docker_client)
    lima_home = tmp_path_factory.mktemp("lima") / f"h{uuid.uuid4().hex[:6]}"
    env = {
        "CFTUI_LIMACTL": str(STANDIN / "limactl"),
        "CF_STANDIN_IMAGE": image,
        "LIMA_HOME": str(lima_home),
        # The stand-in is a Python script needing PyYAML: this interpreter's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        if lima_home.is_dir():
            names = [p.name for p in lima_home.iterdir() if (p / "standin.json").exists()]
            if names:
                subprocess.run(
                    [str(STANDIN / "limactl"), "delete", "--force", *names],
                    capture_output=True,
                    check=False,
                )
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(lima_home, ignore_errors=True)


@dataclass
class LimaStack:
    home: FleetHome
    bot: BotConfig
    vm: str
    env: dict[str, str]

    def runtime(self) -> LimaRuntime:
        return LimaRuntime(self.home)

    def vm_sh(
        self, script: str, *, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """A root shell command in the VM (through `limactl shell`, not the
        runtime's SSH: an independent view for assertions)."""
        proc = subprocess.run(
            [self.env["CFTUI_LIMACTL"], "shell", self.vm, "sh", "-c", script],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"in VM: {script!r} failed: {proc.stderr or proc.stdout}")
        return proc


def make_lima_home(root: Path, bot: str, vm: str) -> FleetHome:
    home = FleetHome(root)
    init_bot(
        home,
        bot,
        runtime="lima",
        code=str(DEMO_AGENT),
        gateway="generic",
        upstreams={
            "anthropic": f"http://127.0.0.1:{FAKE_LLM_PORT}",
            "openai": f"http://127.0.0.1:{FAKE_LLM_PORT}",
        },
    )
    with home.editing() as doc:
        doc["bots"][bot]["lima"]["vm"] = vm
        doc["bots"][bot]["limits"]["memory_mb"] = 512
    (home.code_dir(bot) / "lima-test-marker.txt").write_text("pushed by rsync\n")
    # The fake provider takes any key; the proxy needs one to inject.
    atomic_write_private(
        home.providers_env(bot),
        "ANTHROPIC_API_KEY=sk-ant-test-lima\nOPENAI_API_KEY=sk-test-lima\n",
    )
    return home


def start_fake_llm(stack: LimaStack) -> None:
    stack.vm_sh(
        "systemctl is-active -q cf-test-fake-llm || systemd-run --unit=cf-test-fake-llm "
        f"/opt/clawfactory/venv/bin/cf-fake-llm --listen 127.0.0.1:{FAKE_LLM_PORT}"
    )


@pytest.fixture(scope="session")
def shared_vm(lima_env) -> str:
    """The name of the one VM the test session shares (created on first use,
    deleted with LIMA_HOME at the end): provisioning runs once."""
    return f"cft{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def lima_stack(lima_env, shared_vm, tmp_path_factory) -> Iterator[LimaStack]:
    """One demo-agent bot up in the shared VM, for the tests of a module."""
    vm = shared_vm
    root = tmp_path_factory.mktemp("fleet") / "home"
    bot = "lbot"
    home = make_lima_home(root, bot, vm)
    config = home.bot(bot)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLAWFACTORY_HOME", str(root))
        rt = LimaRuntime(home)

        async def up() -> None:
            try:
                await rt.ensure_vm(config)
                stack = LimaStack(home, config, vm, lima_env)
                await asyncio.to_thread(start_fake_llm, stack)
                await rt.up(config)
            finally:
                await rt.aclose()

        asyncio.run(up())
        stack = LimaStack(home, config, vm, lima_env)
        try:
            yield stack
        finally:  # leave the VM to the next module, without this bot running
            stack.vm_sh(f"systemctl stop 'cf-*@{bot}.service'", check=False)
