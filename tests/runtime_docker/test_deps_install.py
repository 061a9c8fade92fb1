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
import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cftui import lifecycle
from cftui.egress_control import set_capture
from cftui.errors import CftuiError
from cftui.progress import ProgressEvent
from cftui.proposals.scan import scan
from cftui.runtime import Runtimes
from cftui.runtime.docker.spec import LABEL_BOT
from tests.fakes.npm_registry import PACKAGE, VERSION, Registry, manifest, run_registry
from tests.runtime_docker.helpers import commit_declared

from .helpers import TEST_LABEL, World, cftui, wait_for


@dataclass
class DepsBot:
    world: World
    name: str
    registry: Registry

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
        return self.registry.gets()


def git(cwd: os.PathLike, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def commit_save(world: World, bot: str, files: dict[str, str]) -> None:
    commit_declared(world.home.code_dir(bot), bot, files)


@pytest.fixture(scope="module")
def deps_bot(world: World) -> Iterator[DepsBot]:
    name = f"dp{world.suffix}"
    ext = f"cf-{name}-ext"
    # The bot's outside network made ahead of its start (the start adopts
    # it), so the registry is there when the install runs.
    net = world.client.networks.create(ext, driver="bridge", labels={LABEL_BOT: name})
    registry = None
    try:
        registry = run_registry(
            world.client,
            ext,
            f"cftest-{world.suffix}-registry",
            {TEST_LABEL: world.suffix},
            wait_for,
        )
        world.add_bot(name)
        world.home.update_bot(name, egress_allow=[registry.key])
        commit_save(
            world,
            name,
            {
                "package.json": manifest(**{PACKAGE: VERSION}),
                ".npmrc": f"registry={registry.url}\n",
            },
        )
        yield DepsBot(world, name, registry)
    finally:
        if registry is not None:
            with contextlib.suppress(Exception):
                registry.container.remove(force=True)
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
    # npm's output kept for the operator (the container is gone): `cftui logs BOT installer`.
    out = cftui(w, "logs", name, "installer")
    assert out.returncode == 0, out.stderr
    assert "cftui: npm install of " in out.stdout and ": exit 0" in out.stdout, out.stdout
    assert "added 1 package" in out.stdout, out.stdout


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


def test_with_capture_on_the_installs_requests_are_in_the_capture_log(deps_bot: DepsBot) -> None:
    w, name = deps_bot.world, deps_bot.name
    set_capture(w.home, name, True, wait=False)
    try:
        # A new approved list, so the installer runs again (capture on).
        commit_save(w, name, {"package.json": manifest(**{PACKAGE: "~1.3.0"})})
        events = deps_bot.start()
        assert any("dependencies installed" in e.message for e in events), events
        out = cftui(w, "decrypt", name, "--json")
        assert out.returncode == 0, out.stderr
        urls = [json.loads(line)["url"] for line in out.stdout.splitlines()]
        base = deps_bot.registry.url.rstrip("/")
        assert f"{base}/{PACKAGE}" in urls, urls
        assert f"{base}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz" in urls, urls
    finally:
        set_capture(w.home, name, False, wait=False)


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
    assert f"cftui logs {name} installer" in reason
    log = cftui(w, "logs", name, "installer").stdout
    assert "npm ERR!" in log or "npm error" in log, log
    assert ": exit 0" not in log, log  # this install's log replaced the last
