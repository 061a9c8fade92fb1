"""A start's install of the bot's declared dependencies (issue #24): a
one-shot container of `clawfactory/installer` (Debian's node and npm) on
the bot's internal network, whose only way out is the egress proxy, so the
allowlist applies and capture records it.

What it installs is the approved commit's `workspace/<bot>_save/`
package.json, lockfile and .npmrc (`cftui.deps.declared`), never the files
the gateway wrote since. It runs as the gateway's uid, with no capability,
no install scripts (`--ignore-scripts`) and a read-only root, writing only
`state/.installed-new`, which replaces `state/installed/` when npm
succeeds (`cftui.deps.installed`); an unchanged approved list is not
installed again. A failure fails the start with npm's own reason in one line.

A bot on another host is installed the same way, there: the installer
image is made on this machine's engine and sent over the link, the
container runs on the host's engine on the bot's internal network, and the
staging, marker and swap are the same steps on the host's `state/`, each a
short script run there as the gateway's user (`installed.ShellState`).
npm's output still comes back to this machine's `logs/<bot>/installer.log`.
"""

from __future__ import annotations

import shlex
import time

from cftui.deps import declared, installed
from cftui.deps.installed import InstallError
from cftui.fleet import BotConfig
from cftui.gateway.wiring import CA_BUNDLE, CA_DIR, CA_PEM, EGRESS_PROXY
from cftui.hosts.layout import HostLayout
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime.docker.engine import DockerEngine, explain
from cftui.runtime.docker.remote import _as_gateway, _q
from cftui.runtime.docker.spec import HARDENING, LABEL_BOT, ca_volume, int_network
from cftui.runtime.gateway_uid import gateway_user
from cftui.runtime.images.installer import ensure_installer_image
from cftui.runtime.npm_install import (
    INSTALL_TIMEOUT_S,
    command_for,
    install_environment,
    keep_and_check,
)

INSTALL_MOUNT = "/install"
_HOST_STEP_S = 600.0  # one step on another host's state/ (removing a large node_modules)
_SEND_WAIT_S = 960.0  # the installer image sent to another host (its engine's load)


class StackInstall(DockerEngine):
    """The install step of a start (part of `DockerRuntime`)."""

    def _install_deps(self, bot: BotConfig, progress: Progress = no_progress) -> str:
        """Install the approved dependency list unless it is installed
        already; what was done, in a few words (for the start's progress).
        Blocking (a pool thread); for a bot on another host, its `state/`
        is that host's (`ShellState`) and the installer runs on its engine."""
        task = f"start {bot.name}"
        code = self.home.code_dir(bot.name)
        deps = declared.approved_deps(code, bot.name)
        if not deps.declared:
            return "no dependencies declared"
        declared.approved_declared(deps, bot.name)  # a list npm could read, or one line why
        owner = gateway_user()
        tree = self._state_tree(bot, owner)
        digest = deps.digest()
        if installed.is_current(tree, digest):
            return "dependencies unchanged"
        installed.refuse_planted(tree)  # before any image is made or sent
        progress(ProgressEvent(task, 2, 4, "dependencies: installer image"))
        image = self._installer_image(progress)
        staging = installed.new_staging(tree, deps.files())
        progress(ProgressEvent(task, 2, 4, "dependencies: npm install (through egress)"))
        started = time.monotonic()
        try:
            status, log = self._run_installer(bot, image, staging, command_for(deps), owner)
            keep_and_check(self.home, bot.name, deps, status, log)
            installed.swap_in(tree, digest, deps.commit)
        except BaseException:
            installed.discard_staging(tree)
            raise
        return f"dependencies installed in {time.monotonic() - started:.1f}s"

    def _state_tree(self, bot: BotConfig, owner: tuple[int, int]) -> installed.StateTree:
        """The bot's `state/` as the install touches it: this machine's, or
        its host's, reached over the link, each step there as the gateway's
        user in that `state/` (reached from the host's root, whose
        directories are root's, never through a link)."""
        if self._link is None:
            return installed.LocalState(self.home.state_dir(bot.name), owner, f"{bot.name}: state/")
        link = self._link
        path = HostLayout.of(link.host).state_dir(bot.name)
        state = _q(path)

        def run(script: str, stdin: bytes | None) -> tuple[int, bytes, str]:
            line = (
                f"{{ [ -d {state} ] && [ ! -L {state} ]; }} "
                f"|| {{ echo 'state/ is not a directory' >&2; exit 1; }}; "
                f"cd -P {state} && " + _as_gateway(f"sh -c {shlex.quote('set -u; ' + script)}")
            )
            ran = self._on_link(
                link.run(line, stdin=stdin, timeout=_HOST_STEP_S, what="the install's state/"),
                wait=_HOST_STEP_S + 15,
            )
            return ran.code, ran.out, ran.err

        where = f"{bot.name}: host {link.host.name}'s state/"
        return installed.ShellState(run, str(path), where)

    def _installer_image(self, progress: Progress) -> str:
        """The installer image in this engine: made here, or for another
        host made on this machine's engine and sent (`send_images`: save |
        load over the link, skipped when the host holds its id), as the
        stack's images are."""
        if self._link is None:
            return ensure_installer_image(self.client(), progress)
        builder = self._local_builder()
        image = ensure_installer_image(builder.client(), progress)
        self._on_link(builder.send_images([image], self), wait=_SEND_WAIT_S)
        return image

    def _local_builder(self) -> DockerEngine:
        """This machine's engine (DockerRuntime's)."""
        raise NotImplementedError

    def _run_installer(
        self, bot: BotConfig, image: str, staging: str, command: list[str], owner: tuple[int, int]
    ) -> tuple[int, str]:
        """npm run in its container: its exit status and its output (each
        line stamped by Docker)."""
        import docker.errors
        import requests

        name = f"cf-{bot.name}-installer"
        with _suppress_missing():
            self.api.remove_container(name, force=True)
        host_config = self.api.create_host_config(
            **HARDENING,
            read_only=True,
            tmpfs={"/tmp": "rw,nosuid,nodev,size=512m"},
            mounts=[
                {"Target": INSTALL_MOUNT, "Source": staging, "Type": "bind", "ReadOnly": False},
                {
                    "Target": CA_DIR,
                    "Source": ca_volume(bot.name),
                    "Type": "volume",
                    "ReadOnly": True,
                },
            ],
            mem_limit="1024m",
            pids_limit=512,
        )
        networking = self.api.create_networking_config(
            {int_network(bot.name): self.api.create_endpoint_config()}
        )
        try:
            with self.gate(bot, "installing its dependencies"):
                cid = self.api.create_container(
                    image=image,
                    command=command,
                    name=name,
                    user=f"{owner[0]}:{owner[1]}",
                    environment=install_environment(EGRESS_PROXY, CA_BUNDLE, CA_PEM, "/tmp"),
                    working_dir=INSTALL_MOUNT,
                    labels={LABEL_BOT: bot.name, "io.clawfactory.service": "installer"},
                    host_config=host_config,
                    networking_config=networking,
                    detach=True,
                )["Id"]
                self.api.start(cid)
            try:
                result = self.api.wait(cid, timeout=INSTALL_TIMEOUT_S)
                raw = self.api.logs(cid, stdout=True, stderr=True, timestamps=True)
            finally:
                with _suppress_missing():
                    self.api.remove_container(cid, force=True)
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise InstallError(
                f"{bot.name}: cannot install its dependencies: {explain(exc)}"
            ) from None
        status = result.get("StatusCode")
        return (status if isinstance(status, int) else -1), raw.decode("utf-8", "replace")


class _suppress_missing:
    """Ignore the engine's 404 for a container already gone."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        import docker.errors

        return kind is not None and issubclass(kind, docker.errors.NotFound)
