"""The image build API: builds only when sources changed, the air-gapped
fallback to clawfactory/base:bookworm, clear one-line errors, the lock that
keeps two builders of one image apart."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cftui.errors import RuntimeOperationError, UsageError
from cftui.progress import ProgressEvent
from cftui.runtime.gateway_uid import GATEWAY_GID, GATEWAY_UID
from cftui.runtime.images import cache, catalog, engine, gateway, hashing, services, wheels
from tests.images.imgkit import PREFIX

DEMO_AGENT = catalog.REPO_ROOT / "cftui" / "templates" / "demo-agent"
# A base that is neither here nor pullable: marked as a failed pull, so that
# no test asks a registry anything and the fallback is taken everywhere.
NO_SUCH_BASE = f"{PREFIX}nosuch/python:3.11"


class Events(list):
    def __call__(self, event: ProgressEvent) -> None:
        self.append(event)

    def text(self) -> str:
        return "\n".join(e.message for e in self)


@pytest.fixture
def unpullable(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(engine._unpullable, NO_SUCH_BASE, time.monotonic())
    return NO_SUCH_BASE


@pytest.fixture
def bot_name(docker_client: Any):
    name = f"t{os.urandom(4).hex()}"
    yield name
    with contextlib.suppress(Exception):
        docker_client.images.remove(catalog.gateway_image_name(name), force=True, noprune=True)


def _demo_code(tmp_path: Path, base: str) -> Path:
    """The demo agent as a bot's code/, its default base made unpullable."""
    code = tmp_path / "code"
    shutil.copytree(DEMO_AGENT, code)
    dockerfile = code / "Dockerfile"
    text = dockerfile.read_text().replace(
        "ARG BASE_IMAGE=python:3.11-slim", f"ARG BASE_IMAGE={base}"
    )
    dockerfile.write_text(text)
    return code


def _write_dockerfile(tmp_path: Path, text: str) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "Dockerfile").write_text(text)
    return code


@pytest.mark.docker
@pytest.mark.timeout(1800)  # may be the first to build every image
def test_service_image_is_not_rebuilt_when_sources_are_unchanged(docker_client, service_images):
    before = docker_client.images.get(service_images["demo-agent"]).id
    events = Events()
    started = time.monotonic()
    tag = services.ensure_image(docker_client, "demo-agent", events)
    assert tag == service_images["demo-agent"]
    assert docker_client.images.get(tag).id == before
    assert events == []
    assert time.monotonic() - started < 2


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(900)  # may build the base image
def test_gateway_builds_on_the_base_image_when_its_default_base_cannot_be_pulled(
    docker_client, unpullable, bot_name, tmp_path
):
    code = _demo_code(tmp_path, unpullable)
    events = Events()
    tag = gateway.build_gateway_image(docker_client, bot_name, code, events)
    assert tag == f"clawfactory/gateway-{bot_name}:latest"
    assert f"{unpullable} cannot be pulled: building on {catalog.BASE_IMAGE}" in events.text()
    image = docker_client.images.get(tag)
    assert image.attrs["Config"]["Labels"][catalog.HASH_LABEL] == gateway.gateway_source_hash(code)
    assert image.attrs["Config"]["User"] == f"{GATEWAY_UID}:{GATEWAY_GID}"
    # Built again with nothing changed: no build, same image.
    again = Events()
    assert gateway.build_gateway_image(docker_client, bot_name, code, again) == tag
    assert again == []
    assert docker_client.images.get(tag).id == image.id
    # The workspace is read from the /code mount, no build input (issue 17):
    # a promoted SOUL.md needs no rebuild ...
    (code / "workspace" / "SOUL.md").write_text("# SOUL\n\nA changed soul.\n")
    soul = Events()
    assert gateway.build_gateway_image(docker_client, bot_name, code, soul) == tag
    assert soul == [] and docker_client.images.get(tag).id == image.id
    # ... while a change in a build input rebuilds it.
    with open(code / "agent.py", "a") as fh:
        fh.write("# changed\n")
    changed = Events()
    gateway.build_gateway_image(docker_client, bot_name, code, changed)
    assert any("Successfully built" in e.message for e in changed)
    assert docker_client.images.get(tag).id != image.id


@pytest.mark.docker
def test_gateway_whose_from_cannot_be_pulled_and_has_no_base_arg_is_refused_clearly(
    docker_client, unpullable, bot_name, tmp_path
):
    code = _write_dockerfile(tmp_path, f'FROM {unpullable}\nCMD ["true"]\n')
    with pytest.raises(RuntimeOperationError) as exc:
        gateway.build_gateway_image(docker_client, bot_name, code)
    message = str(exc.value)
    assert "\n" not in message
    assert unpullable in message
    assert "ARG BASE_IMAGE" in message


@pytest.mark.docker
@pytest.mark.slow
def test_failing_build_reports_the_failing_step_in_one_line(
    docker_client, unpullable, bot_name, tmp_path
):
    code = _write_dockerfile(
        tmp_path,
        f"ARG BASE_IMAGE={unpullable}\nFROM ${{BASE_IMAGE}}\n"
        "RUN echo fetching-the-agent && exit 7\n",
    )
    with pytest.raises(RuntimeOperationError) as exc:
        gateway.build_gateway_image(docker_client, bot_name, code)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"building clawfactory/gateway-{bot_name}:latest failed")
    assert "returned a non-zero code: 7" in message
    assert f"built on {catalog.BASE_IMAGE} because {unpullable} cannot be pulled" in message


def test_gateway_without_dockerfile_is_refused(tmp_path):
    with pytest.raises(RuntimeOperationError, match="has no Dockerfile"):
        gateway.build_gateway_image(None, "nodockerfile", tmp_path)


def test_gateway_with_a_bad_bot_name_is_refused(tmp_path):
    with pytest.raises(UsageError, match="bad bot name"):
        gateway.build_gateway_image(None, "Bad/Name", tmp_path)


def test_unknown_service_is_refused():
    with pytest.raises(RuntimeOperationError, match="unknown service image 'gateway'"):
        services.ensure_image(None, "gateway")


def test_missing_sources_are_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("CLAWFACTORY_SOURCE", str(tmp_path))
    with pytest.raises(RuntimeOperationError, match="set CLAWFACTORY_SOURCE"):
        catalog.source_root()


def test_tree_hash_follows_content_and_exec_bit_and_ignores_caches(tmp_path):
    (tmp_path / "a.py").write_text("print(1)\n")
    first = hashing.tree_hash(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: x\n")
    assert hashing.tree_hash(tmp_path) == first
    (tmp_path / "a.py").chmod(0o755)
    second = hashing.tree_hash(tmp_path)
    assert second != first
    (tmp_path / "a.py").write_text("print(2)\n")
    assert hashing.tree_hash(tmp_path) not in (first, second)


def test_dockerfile_base_default_is_read_from_the_arg(tmp_path):
    df = tmp_path / "Dockerfile"
    df.write_text("ARG BASE_IMAGE=node:22-bookworm-slim\nFROM ${BASE_IMAGE}\n")
    assert services.dockerfile_base_default(df) == (True, "node:22-bookworm-slim")
    df.write_text("FROM debian:bookworm\n")
    assert services.dockerfile_base_default(df) == (False, None)


def test_the_openclaw_dockerfile_builds_from_the_project_base_which_takes_a_node_base_arg():
    declares, default = services.dockerfile_base_default(
        catalog.REPO_ROOT / "images" / "openclaw" / "Dockerfile"
    )
    assert declares and default == f"{catalog.PROJECT_BASES['openclaw-base']}:{catalog.TAG}"
    declares, default = services.dockerfile_base_default(
        catalog.REPO_ROOT / "images" / "openclaw-base" / "Dockerfile"
    )
    assert declares and default and default.startswith("node:22")


def test_the_openclaw_dockerfile_needs_no_network_and_no_remote_source():
    """The bot's own Dockerfile (which the agent can write, and which builds
    with no network) has no RUN step and no ADD: npm runs in the base."""
    from cftui.runtime.images import dockerfile

    text = (catalog.REPO_ROOT / "images" / "openclaw" / "Dockerfile").read_text()
    instructions, escape = dockerfile.parse(text)
    assert not [i for i in instructions if i.cmd in ("run", "add")]
    assert dockerfile.remote_add_sources(instructions, escape) == []


def test_a_second_builder_waits_for_the_lock_held_by_another_process(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lock = cache.cache_dir() / "locks" / "base-bookworm.lock"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX);"
            " print('held', flush=True); sys.stdin.readline()",
            str(lock),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        events = Events()
        entered = threading.Event()

        def second() -> None:
            with cache.file_lock("base-bookworm", events, "base image"):
                entered.set()

        thread = threading.Thread(target=second)
        thread.start()
        deadline = time.monotonic() + 10
        while not events and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "waiting for another build" in events.text()
        assert not entered.is_set()
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert entered.wait(10)
        thread.join(10)
    finally:
        holder.kill()
        holder.wait()


def test_build_images_script_refuses_an_unknown_service():
    proc = subprocess.run(
        [str(catalog.REPO_ROOT / "scripts" / "build-images.sh"), "nosuch"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "unknown service 'nosuch'" in proc.stderr


def test_wheels_for_another_python_are_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(wheels, "IMAGE_PYTHON", (3, 99))
    with pytest.raises(RuntimeOperationError, match=r"needs cftui on Python 3\.99"):
        wheels.wheelhouse("llm", tmp_path / "wheels")


def test_wheelhouse_keeps_dependencies_and_the_project_wheel_apart(tmp_path):
    build_dir = catalog.REPO_ROOT / "proxies" / "build"
    existed = build_dir.exists()
    dest = tmp_path / "wheels"
    wheels.wheelhouse("llm", dest)
    deps = sorted(p.name for p in (dest / "deps").glob("*.whl"))
    own = sorted(p.name for p in (dest / "own").glob("*.whl"))
    assert any(name.startswith("aiohttp-") for name in deps)
    assert not any(name.startswith("clawfactory_proxies-") for name in deps)
    assert len(own) == 1 and own[0].startswith("clawfactory_proxies-")
    assert build_dir.exists() == existed, "building the wheel wrote into the repository"


def test_tree_hash_of_a_file_root_follows_its_bytes(tmp_path):
    """A service image's sources name proxies/pyproject.toml itself: a change
    to its dependencies alone must rebuild the image."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('dependencies = ["aiohttp>=3.9"]\n')
    first = hashing.tree_hash(tmp_path / "src-missing", pyproject)
    pyproject.write_text('dependencies = ["aiohttp>=3.10"]\n')
    assert hashing.tree_hash(tmp_path / "src-missing", pyproject) != first
