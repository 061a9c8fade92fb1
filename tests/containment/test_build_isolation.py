"""Issue 15, leak 2: the agent writes code/Dockerfile, and cftui builds it.

Played as the agent against the real engine: a RUN step that reaches for a
listener on a network of the test's own, an ADD that makes dockerd fetch
from the host's loopback, a Dockerfile that is a link out, and files planted
to hang or fool the host while it reads code/ (a fifo, a `.dockerignore`
link). Each build must fail closed, with one line saying why.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cftui.errors import RuntimeOperationError
from cftui.runtime.images import catalog, engine, gateway

LABEL = "io.clawfactory.test"
# An image already here: no test may pull.
BUILD_BASE = catalog.BASE_IMAGE


@pytest.fixture
def bot(docker_client: Any) -> Iterator[str]:
    name = f"tb{secrets.token_hex(4)}"
    yield name
    with contextlib.suppress(Exception):
        docker_client.images.remove(catalog.gateway_image_name(name), force=True, noprune=True)


@pytest.fixture
def base_image(docker_client: Any) -> str:
    if engine.image_labels(docker_client, BUILD_BASE) is None:
        pytest.fail(f"{BUILD_BASE} is not built: run scripts/build-images.sh")
    return BUILD_BASE


def _code(tmp_path: Path, dockerfile: str) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "Dockerfile").write_text(dockerfile)
    return code


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b"host-loopback-only-secret\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on 127.0.0.1 only, recording every request it gets."""
    hits: list[str] = []
    handler = type("Handler", (_Recorder,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def listener(docker_client: Any, base_image: str) -> Iterator[tuple[list[str], int, Any]]:
    """A TCP listener in a container of the test's own, on a network the test
    creates and on the default bridge (where the classic builder's RUN steps
    run when given a network): its addresses, its port, the container."""
    tag = secrets.token_hex(4)
    net = docker_client.networks.create(f"cftest-build-{tag}", driver="bridge", labels={LABEL: tag})
    port = 18000 + secrets.randbelow(1000)
    script = (
        "import socket\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('0.0.0.0', {port})); s.listen(8)\n"
        "print('listening', flush=True)\n"
        "while True:\n"
        "    c, a = s.accept(); print('connection from', a[0], flush=True); c.close()\n"
    )
    box = docker_client.containers.run(
        base_image,
        ["python3", "-c", script],
        name=f"cftest-build-{tag}-listener",
        detach=True,
        network=net.name,
        labels={LABEL: tag},
    )
    try:
        docker_client.networks.get("bridge").connect(box)
        box.reload()
        addrs = [n["IPAddress"] for n in box.attrs["NetworkSettings"]["Networks"].values()]
        yield [a for a in addrs if a], port, box
    finally:
        with contextlib.suppress(Exception):
            box.remove(force=True)
        with contextlib.suppress(Exception):
            net.remove()


@pytest.mark.docker
@pytest.mark.timeout(180)
def test_build_run_step_cannot_reach_a_container_on_any_network(
    docker_client, bot, tmp_path, listener
):
    addrs, port, box = listener
    # Exit 42 when every address is unreachable, 0 when one answers.
    probe = (
        "import socket, sys\n"
        f"for a in {addrs!r}:\n"
        "    try:\n"
        f"        socket.create_connection((a, {port}), timeout=3).close(); sys.exit(0)\n"
        "    except OSError:\n"
        "        pass\n"
        "sys.exit(42)\n"
    )
    code = _code(tmp_path, f"FROM {BUILD_BASE}\nCOPY probe.py /probe.py\nRUN python3 /probe.py\n")
    (code / "probe.py").write_text(probe)
    with pytest.raises(RuntimeOperationError) as exc:
        gateway.build_gateway_image(docker_client, bot, code)
    message = str(exc.value)
    assert "\n" not in message
    assert "returned a non-zero code: 42" in message
    assert b"connection from" not in box.logs()


@pytest.mark.docker
@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "add",
    [
        "ADD http://127.0.0.1:{port}/secret /secret",
        "add http://127.0.0.1:{port}/secret /secret",
        "ADD --chown=1000:1000 http://127.0.0.1:{port}/secret /secret",
        'ADD ["http://127.0.0.1:{port}/secret", "/secret"]',
        "AD\\\nD http://127.0.0.1:{port}/secret /secret",
        "ADD \\\n  # a comment inside the instruction\n  http://127.0.0.1:{port}/secret /secret",
        'ADD "http://127.0.0.1:{port}/secret" /secret',
        "ARG SRC=http://127.0.0.1:{port}/secret\nADD ${{SRC}} /secret",
    ],
    ids=["plain", "lower", "flag", "json", "split-keyword", "comment", "quoted", "variable"],
)
def test_build_refuses_add_from_the_host_loopback_before_building(
    docker_client, bot, tmp_path, loopback_server, add
):
    port, hits = loopback_server
    line = add.format(port=port)
    code = _code(tmp_path, f"FROM {BUILD_BASE}\n{line}\n")
    with pytest.raises(RuntimeOperationError) as exc:
        gateway.build_gateway_image(docker_client, bot, code)
    message = str(exc.value)
    assert "\n" not in message
    assert "code/Dockerfile line " in message
    assert "ADD from" in message and "is refused" in message
    assert hits == []
    assert engine.image_labels(docker_client, catalog.gateway_image_name(bot)) is None


@pytest.mark.docker
@pytest.mark.timeout(180)
def test_build_refuses_add_under_a_backtick_escape_directive(
    docker_client, bot, tmp_path, loopback_server
):
    """With `# escape=\\``, a trailing backslash no longer continues the line:
    the ADD below is an instruction of its own, not part of the RUN."""
    port, hits = loopback_server
    code = _code(
        tmp_path,
        f"# escape=`\nFROM {BUILD_BASE}\nRUN echo one \\\n"
        f"ADD http://127.0.0.1:{port}/secret /secret\n",
    )
    with pytest.raises(RuntimeOperationError, match=r"code/Dockerfile line 4: ADD from"):
        gateway.build_gateway_image(docker_client, bot, code)
    assert hits == []


@pytest.mark.docker
def test_build_refuses_a_dockerfile_that_is_a_link_out_of_code(docker_client, bot, tmp_path):
    outside = tmp_path / "operator-only"
    outside.write_text(f"FROM {BUILD_BASE}\n")
    outside.chmod(0o600)
    code = tmp_path / "code"
    code.mkdir()
    (code / "Dockerfile").symlink_to(outside)
    with pytest.raises(RuntimeOperationError) as exc:
        gateway.build_gateway_image(docker_client, bot, code)
    assert "must be a regular file inside the bot's code/" in str(exc.value)
    assert engine.image_labels(docker_client, catalog.gateway_image_name(bot)) is None


def _run_with_deadline(fn: Any, seconds: float) -> Any:
    """Run fn in a thread; fail (rather than hang the suite) past `seconds`."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return "hung"
    if "error" in box:
        raise box["error"]
    return box["value"]


def _unblock(fifo: Path) -> None:
    """Open a fifo for writing without blocking, so a reader stuck on it ends."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.docker
@pytest.mark.timeout(180)
def test_build_is_not_hung_by_a_fifo_the_agent_planted_in_code(
    docker_client, bot, tmp_path, base_image
):
    code = _code(tmp_path, f"FROM {BUILD_BASE}\nCOPY workspace/ /code/workspace/\n")
    memory = code / "workspace" / "memory"
    memory.mkdir(parents=True)
    (memory / "note.md").write_text("remember\n")
    fifo = memory / "pipe"
    os.mkfifo(fifo)
    try:
        result = _run_with_deadline(
            lambda: gateway.build_gateway_image(docker_client, bot, code), 120
        )
    finally:
        _unblock(fifo)
    assert result == catalog.gateway_image_name(bot)


@pytest.mark.docker
@pytest.mark.timeout(60)
def test_build_refuses_a_dockerignore_link_instead_of_reading_through_it(
    docker_client, bot, tmp_path, base_image
):
    code = _code(tmp_path, f"FROM {BUILD_BASE}\n")
    fifo = tmp_path / "host-fifo"
    os.mkfifo(fifo)
    (code / ".dockerignore").symlink_to(fifo)
    try:
        result = _run_with_deadline(
            lambda: gateway.build_gateway_image(docker_client, bot, code), 30
        )
    except RuntimeOperationError as exc:
        result = str(exc)
    finally:
        _unblock(fifo)
    assert result != "hung"
    assert ".dockerignore must be a regular file" in result


@pytest.fixture
def other_bot_image(docker_client: Any, tmp_path: Path, base_image: str) -> Iterator[str]:
    """Another bot's gateway image, holding a file of that bot's code/."""
    name = f"tb{secrets.token_hex(4)}"
    code = tmp_path / "other" / "code"
    code.mkdir(parents=True)
    (code / "Dockerfile").write_text(f"FROM {BUILD_BASE}\nCOPY memory.md /code/memory.md\n")
    (code / "memory.md").write_text("the other bot's private memory\n")
    tag = gateway.build_gateway_image(docker_client, name, code)
    try:
        yield tag
    finally:
        with contextlib.suppress(Exception):
            docker_client.images.remove(tag, force=True, noprune=True)


@pytest.mark.docker
@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "dockerfile",
    [
        "FROM {other}\n",
        "ARG X={other}\nFROM ${{X}}\n",
        "FROM {other_id}\n",
        f"FROM {BUILD_BASE}\nCOPY --from={{other}} /code/memory.md /stolen.md\n",
    ],
    ids=["from", "from-variable", "from-image-id", "copy-from"],
)
def test_build_refuses_reading_another_bots_gateway_image(
    docker_client, bot, tmp_path, other_bot_image, dockerfile
):
    other_id = docker_client.images.get(other_bot_image).id
    code = _code(tmp_path, dockerfile.format(other=other_bot_image, other_id=other_id))
    with pytest.raises(RuntimeOperationError) as exc:
        gateway.build_gateway_image(docker_client, bot, code)
    message = str(exc.value)
    assert "\n" not in message
    assert "is another bot's gateway image: refused" in message
    assert engine.image_labels(docker_client, catalog.gateway_image_name(bot)) is None


@pytest.mark.docker
def test_build_refuses_an_image_named_by_a_variable_it_cannot_resolve(docker_client, bot, tmp_path):
    code = _code(tmp_path, f"ARG WHICH\nFROM {BUILD_BASE}\nCOPY --from=$WHICH /a /b\n")
    with pytest.raises(RuntimeOperationError, match="line 3: COPY --from \\$WHICH names its image"):
        gateway.build_gateway_image(docker_client, bot, code)
