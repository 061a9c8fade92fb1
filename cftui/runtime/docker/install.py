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
"""

from __future__ import annotations

import time

from cftui.deps import declared, installed
from cftui.deps.installed import InstallError
from cftui.fleet import BotConfig
from cftui.gateway.wiring import CA_BUNDLE, CA_DIR, CA_PEM, EGRESS_PROXY
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime.docker.engine import DockerEngine, explain
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


class StackInstall(DockerEngine):
    """The install step of a start (part of `DockerRuntime`)."""

    def _install_deps(self, bot: BotConfig, progress: Progress = no_progress) -> str:
        """Install the approved dependency list unless it is installed
        already; what was done, in a few words (for the start's progress)."""
        task = f"start {bot.name}"
        code = self.home.code_dir(bot.name)
        deps = declared.approved_deps(code, bot.name)
        if not deps.declared:
            return "no dependencies declared"
        if self.remote:
            raise InstallError(
                f"{bot.name}: installing declared dependencies on another host is not built "
                "yet (#21): run the bot on this machine, or declare none"
            )
        declared.approved_declared(deps, bot.name)  # a list npm could read, or one line why
        state = self.home.state_dir(bot.name)
        digest = deps.digest()
        if installed.is_current(state, digest):
            return "dependencies unchanged"
        progress(ProgressEvent(task, 2, 4, "dependencies: installer image"))
        image = ensure_installer_image(self.client(), progress)
        owner = gateway_user()
        staging = installed.new_staging(state, deps.files(), owner)
        progress(ProgressEvent(task, 2, 4, "dependencies: npm install (through egress)"))
        started = time.monotonic()
        try:
            status, log = self._run_installer(bot, image, str(staging), command_for(deps), owner)
            keep_and_check(self.home, bot.name, deps, status, log)
            installed.swap_in(state, digest, deps.commit, owner)
        except BaseException:
            installed.discard_staging(state)
            raise
        return f"dependencies installed in {time.monotonic() - started:.1f}s"

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
