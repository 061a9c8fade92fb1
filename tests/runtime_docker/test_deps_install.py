"""Declared dependencies installed at start (#24), against the real engine
and a registry of the test's own: a small HTTP server serving one package's
metadata document and tarball as npm's registry protocol does, on the bot's
outside network, where only its egress proxy can reach it.

The approved `workspace/<bot>_save/package.json` (and `.npmrc`, naming the
registry) is installed into `state/installed/`; a second start does not run
the installer; the bot's own edit in its save directory installs nothing and
shows as a dependency change; a registry off the allowlist fails the start
in one line and keeps the previous install."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cftui import lifecycle
from cftui.errors import CftuiError
from cftui.progress import ProgressEvent
from cftui.proposals.scan import scan
from cftui.runtime import Runtimes
from cftui.runtime.docker.spec import LABEL_BOT

from .helpers import TEST_LABEL, World, wait_for

PORT = 4873
PACKAGE = "left-pad"
VERSION = "1.3.0"
REGISTRY = r"""
import base64, http.server, json, sys
port, meta, tgz = int(sys.argv[1]), sys.argv[2].encode(), base64.b64decode(sys.argv[3])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("://", 1)[-1]
        path = "/" + path.split("/", 1)[1] if "://" in self.path else path
        here = b"http://" + self.headers.get("Host", "").encode()
        body, kind = (tgz, "application/octet-stream") if path.endswith(".tgz") else (meta.replace(b"__BASE__", here), "application/json")
        if not (path.endswith(".tgz") or path.rstrip("/") == "/left-pad"):
            self.send_response(404); self.end_headers(); return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print(json.dumps({"get": path}), flush=True)
    def log_message(self, *a): pass
print(json.dumps({"ready": True}), flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", port), H).serve_forever()
"""


def _tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in (
            ("package/package.json", json.dumps({"name": PACKAGE, "version": VERSION})),
            ("package/index.js", "module.exports = (s, n) => String(s).padStart(n);\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _metadata(base: str, tgz: bytes) -> str:
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
    version = {
        "name": PACKAGE,
        "version": VERSION,
        "dist": {
            "tarball": f"{base}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz",
            "shasum": hashlib.sha1(tgz).hexdigest(),
            "integrity": integrity,
        },
    }
    return json.dumps(
        {"name": PACKAGE, "dist-tags": {"latest": VERSION}, "versions": {VERSION: version}}
    )


@dataclass
class DepsBot:
    world: World
    name: str
    registry: Any
    registry_key: str  # host:port of the registry, as the allowlist names it

    def start(self) -> list[ProgressEvent]:
        events: list[ProgressEvent] = []

        async def go() -> None:
            runtimes = Runtimes(self.world.home)
            try:
                bot = self.world.home.bot(self.name)
                await lifecycle.stop(self.world.home, bot, runtimes)
                await lifecycle.start(self.world.home, bot, runtimes, events.append)
            finally:
                await runtimes.aclose()

        asyncio.run(go())
        return events

    def gets(self) -> list[str]:
        lines = self.registry.logs().decode().splitlines()
        return [json.loads(ln)["get"] for ln in lines if '"get"' in ln]


def git(cwd: os.PathLike, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def commit_save(world: World, bot: str, files: dict[str, str]) -> None:
    code = world.home.code_dir(bot)
    save = code / "workspace" / f"{bot}_save"
    save.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (save / name).write_text(text)
    git(code, "add", "-f", *(f"workspace/{bot}_save/{n}" for n in files))
    git(code, "commit", "-q", "-m", "declared dependencies")


def manifest(**deps: str) -> str:
    return json.dumps({"name": "save", "private": True, "dependencies": deps}, indent=1)


@pytest.fixture(scope="module")
def deps_bot(world: World) -> Iterator[DepsBot]:
    name = f"dp{world.suffix}"
    ext = f"cf-{name}-ext"
    # The bot's outside network made ahead of its start (the start adopts
    # it), so the registry is there when the install runs.
    net = world.client.networks.create(ext, driver="bridge", labels={LABEL_BOT: name})
    registry = None
    try:
        tgz = _tarball()
        registry = world.client.containers.run(
            "clawfactory/base:bookworm",
            [
                "python3",
                "-c",
                REGISTRY,
                str(PORT),
                _metadata("__BASE__", tgz),
                base64.b64encode(tgz).decode(),
            ],
            name=f"cftest-{world.suffix}-registry",
            detach=True,
            labels={TEST_LABEL: world.suffix},
            network=ext,
        )
        wait_for(lambda: b'"ready"' in registry.logs(), 30, "the test's registry")
        registry.reload()
        got_ip = registry.attrs["NetworkSettings"]["Networks"][ext]["IPAddress"]
        base = f"http://{got_ip}:{PORT}"
        world.add_bot(name)
        key = f"{got_ip}:{PORT}"
        world.home.update_bot(name, egress_allow=[key])
        commit_save(
            world,
            name,
            {"package.json": manifest(**{PACKAGE: VERSION}), ".npmrc": f"registry={base}/\n"},
        )
        yield DepsBot(world, name, registry, key)
    finally:
        if registry is not None:
            with contextlib.suppress(Exception):
                registry.remove(force=True)
        with contextlib.suppress(Exception):
            net.reload()
            for c in net.containers:
                net.disconnect(c, force=True)


def _installed(world: World, bot: str) -> os.stat_result:
    return os.stat(world.home.state_dir(bot) / "installed")


def test_the_approved_dependency_is_installed_through_the_egress_proxy(deps_bot: DepsBot) -> None:
    w, name = deps_bot.world, deps_bot.name
    events = deps_bot.start()
    pkg = w.home.state_dir(name) / "installed" / "node_modules" / PACKAGE / "package.json"
    assert json.loads(pkg.read_text())["version"] == VERSION
    assert any("dependencies installed" in e.message for e in events), events
    assert f"/{PACKAGE}" in deps_bot.gets()
    assert any(g.endswith(".tgz") for g in deps_bot.gets())
    st = os.stat(pkg)
    assert os.stat(w.home.state_dir(name)).st_uid == st.st_uid  # the gateway's uid wrote it


def test_a_second_start_does_not_run_the_installer(deps_bot: DepsBot) -> None:
    before = _installed(deps_bot.world, deps_bot.name)
    fetched = len(deps_bot.gets())
    events = deps_bot.start()
    assert any("dependencies unchanged" in e.message for e in events), events
    after = _installed(deps_bot.world, deps_bot.name)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert len(deps_bot.gets()) == fetched


def test_the_bots_own_edit_installs_nothing_and_is_a_dependency_change(deps_bot: DepsBot) -> None:
    w, name = deps_bot.world, deps_bot.name
    save = w.home.code_dir(name) / "workspace" / f"{name}_save" / "package.json"
    save.write_text(manifest(**{PACKAGE: VERSION, "evil": "6.6.6"}))
    before = _installed(w, name)
    events = deps_bot.start()
    assert any("dependencies unchanged" in e.message for e in events), events
    assert _installed(w, name).st_ino == before.st_ino
    assert not (w.home.state_dir(name) / "installed" / "node_modules" / "evil").exists()
    found = scan(w.home, name)
    assert found.dependencies is not None
    assert [(c.name, c.status) for c in found.dependencies.changes] == [("evil", "added")]


def test_a_registry_off_the_allowlist_fails_the_start_in_one_line(deps_bot: DepsBot) -> None:
    w, name = deps_bot.world, deps_bot.name
    w.home.update_bot(name, egress_allow=["registry.npmjs.org"])
    commit_save(w, name, {"package.json": manifest(**{PACKAGE: "^1.3.0"})})
    before = _installed(w, name)
    with pytest.raises(CftuiError) as err:
        deps_bot.start()
    reason = str(err.value)
    assert "\n" not in reason and "installing its dependencies failed" in reason, reason
    assert "403" in reason or "Forbidden" in reason or "refused" in reason.lower(), reason
    assert _installed(w, name).st_ino == before.st_ino  # the previous install kept
    assert not (w.home.state_dir(name) / ".installed-new").exists()
