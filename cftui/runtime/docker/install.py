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

import re
import time

from cftui.deps import declared, installed
from cftui.deps.installed import InstallError
from cftui.deps.manifest import LOCKFILE
from cftui.fleet import BotConfig
from cftui.gateway.wiring import CA_BUNDLE, CA_DIR, CA_PEM, EGRESS_PROXY
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime.docker.engine import DockerEngine, explain
from cftui.runtime.docker.spec import HARDENING, LABEL_BOT, ca_volume, int_network
from cftui.runtime.gateway_uid import gateway_user
from cftui.runtime.images.installer import ensure_installer_image

INSTALL_MOUNT = "/install"
INSTALL_TIMEOUT_S = 600
_NPM_FLAGS = ["--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--no-update-notifier"]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def install_command(has_lockfile: bool) -> list[str]:
    """`npm ci` when the approved tree locks the versions, else `npm install`."""
    return ["npm", "ci" if has_lockfile else "install", *_NPM_FLAGS]


def install_environment() -> dict[str, str]:
    """npm and node pointed at the egress proxy and trusting its CA."""
    return {
        "HOME": "/tmp",
        "npm_config_cache": "/tmp/npm-cache",
        "npm_config_proxy": EGRESS_PROXY,
        "npm_config_https_proxy": EGRESS_PROXY,
        "HTTP_PROXY": EGRESS_PROXY,
        "HTTPS_PROXY": EGRESS_PROXY,
        "npm_config_cafile": CA_BUNDLE,
        "NODE_EXTRA_CA_CERTS": CA_PEM,
        "npm_config_update_notifier": "false",
        "npm_config_loglevel": "warn",
    }


def npm_reason(log: str) -> str:
    """npm's own reason for a failure, in one line (its `npm ERR!` lines,
    without the pointers to log files)."""
    clean = _CONTROL.sub("", _ANSI.sub("", log))
    lines = []
    for raw in clean.splitlines():
        line = raw.strip()
        for prefix in ("npm ERR!", "npm error"):
            if line.startswith(prefix):
                text = line[len(prefix) :].strip()
                if text and not text.startswith(("A complete log", "/tmp/", "code ", "errno ")):
                    lines.append(text)
    if not lines:
        tail = [ln.strip() for ln in clean.splitlines() if ln.strip()]
        lines = tail[-1:] or ["npm failed with no output"]
    return " ".join(lines)[:300]


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
            self._run_installer(bot, image, str(staging), LOCKFILE in deps.files(), owner)
            installed.swap_in(state, digest, deps.commit, owner)
        except BaseException:
            installed.discard_staging(state)
            raise
        return f"dependencies installed in {time.monotonic() - started:.1f}s"

    def _run_installer(
        self, bot: BotConfig, image: str, staging: str, has_lockfile: bool, owner: tuple[int, int]
    ) -> None:
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
                    command=install_command(has_lockfile),
                    name=name,
                    user=f"{owner[0]}:{owner[1]}",
                    environment=install_environment(),
                    working_dir=INSTALL_MOUNT,
                    labels={LABEL_BOT: bot.name, "io.clawfactory.service": "installer"},
                    host_config=host_config,
                    networking_config=networking,
                    detach=True,
                )["Id"]
                self.api.start(cid)
            try:
                result = self.api.wait(cid, timeout=INSTALL_TIMEOUT_S)
                log = self.api.logs(cid, stdout=True, stderr=True).decode("utf-8", "replace")
            finally:
                with _suppress_missing():
                    self.api.remove_container(cid, force=True)
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise InstallError(
                f"{bot.name}: cannot install its dependencies: {explain(exc)}"
            ) from None
        if result.get("StatusCode") != 0:
            raise InstallError(f"{bot.name}: installing its dependencies failed: {npm_reason(log)}")


class _suppress_missing:
    """Ignore the engine's 404 for a container already gone."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        import docker.errors

        return kind is not None and issubclass(kind, docker.errors.NotFound)
