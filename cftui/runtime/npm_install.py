"""What a start's dependency install is, whichever runtime runs it (#24):
npm's command line and environment (the egress proxy its only way out, its
CA trusted), the line the install log starts with, and npm's own reason for
a failure in one line. Docker runs it in a one-shot container
(`docker/install.py`), Lima as the gateway's user in the VM
(`lima/install.py`); both keep its output (`cftui.deps.install_log`) and
use the same marker and swap of `state/installed/` (`cftui.deps.installed`).
"""

from __future__ import annotations

import re

from cftui.deps import install_log
from cftui.deps.declared import ApprovedDeps
from cftui.deps.installed import InstallError
from cftui.deps.manifest import LOCKFILE
from cftui.fleet import FleetHome

INSTALL_TIMEOUT_S = 600
_NPM_FLAGS = ["--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--no-update-notifier"]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def install_command(has_lockfile: bool) -> list[str]:
    """`npm ci` when the approved tree locks the versions, else `npm install`."""
    return ["npm", "ci" if has_lockfile else "install", *_NPM_FLAGS]


def command_for(deps: ApprovedDeps) -> list[str]:
    return install_command(LOCKFILE in deps.files())


def install_environment(proxy: str, ca_bundle: str, ca_pem: str, tmp: str) -> dict[str, str]:
    """npm and node pointed at the egress proxy and trusting its CA (npm's
    cache and home in `tmp`, which the install throws away)."""
    return {
        "HOME": tmp,
        "npm_config_cache": f"{tmp}/npm-cache",
        "npm_config_proxy": proxy,
        "npm_config_https_proxy": proxy,
        "HTTP_PROXY": proxy,
        "HTTPS_PROXY": proxy,
        "npm_config_cafile": ca_bundle,
        "NODE_EXTRA_CA_CERTS": ca_pem,
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


def keep_and_check(home: FleetHome, bot: str, deps: ApprovedDeps, status: int, output: str) -> None:
    """The install's output kept for `cftui logs BOT installer`; InstallError
    with npm's reason in one line when it failed."""
    lines = output.splitlines()
    header = f"{' '.join(command_for(deps)[:2])} of {deps.commit[:12]}: exit {status}"
    install_log.keep(home, bot, header, lines)
    if status != 0:
        reason = npm_reason("\n".join(install_log.text_of(ln) for ln in lines))
        raise InstallError(
            f"{bot}: installing its dependencies failed: {reason} (cftui logs {bot} installer)"
        )
