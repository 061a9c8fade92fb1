"""A Lima start's install of the bot's declared dependencies (#24), in the
VM, as the gateway's own user, through the bot's egress proxy.

What it installs is the approved commit's `workspace/<bot>_save/` files,
read on the host (`cftui.deps.declared`), never the VM's save directory.
npm is the VM's (`provision/system.sh` installs Node and npm). It runs as
a transient systemd unit (`systemd-run --wait --pipe`) under the gateway's
uid, so the bot's nftables chain applies to it as to the gateway (loopback
to its own LLM and egress proxies only; the install is given no proxy
token, so only the egress is of use), with no new privileges, a read-only
system, a private /tmp and only the staging directory writable, and
`--ignore-scripts`. It writes `state/.installed-new`, which replaces
`state/installed/` only when npm succeeds, and the same marker as Docker's
(`cftui.deps.installed`), so an unchanged approved list costs one read.
The staging, marker and swap are Docker's steps (`installed.ShellState`),
each run in the VM's `state/` as the gateway's user (`runuser`): a link it
planted there gets it nothing it could not do itself, and refuses the
install in one line.
"""

from __future__ import annotations

import asyncio
import shlex
import time

from cftui import locks
from cftui.deps import declared, installed
from cftui.deps.installed import InstallError
from cftui.fleet import BotConfig, FleetHome
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime.lima.plan import SRV, ports_for, unix_user, vm_tree
from cftui.runtime.lima.ssh import VMShell
from cftui.runtime.npm_install import (
    INSTALL_TIMEOUT_S,
    command_for,
    install_environment,
    keep_and_check,
)

EGRESS_WAIT_S = 90
# What the transient unit may do: the gateway's containment, and less.
_SANDBOX = (
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "CapabilityBoundingSet=",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "MemoryMax=1G",
    "TasksMax=512",
    f"RuntimeMaxSec={INSTALL_TIMEOUT_S}",
)


def installer_unit(bot: str) -> str:
    return f"cf-installer-{bot}"


def npm_argv(bot: BotConfig, staging: str, command: list[str]) -> str:
    """The root command line that runs npm in `staging` as the gateway's user."""
    name = bot.name
    user = unix_user("gateway", name)
    ports = ports_for(bot)
    ca = f"{SRV}/ca/{name}"
    env = install_environment(
        f"http://127.0.0.1:{ports.egress}", f"{ca}/bundle.pem", f"{ca}/ca.pem", "/tmp"
    )
    argv = [
        "systemd-run",
        "--quiet",
        "--wait",
        "--pipe",
        "--collect",
        f"--unit={installer_unit(name)}",
        f"--uid={user}",
        f"--gid={user}",
        f"--working-directory={staging}",
        f"--property=ReadWritePaths={staging}",
        *(f"--property={p}" for p in _SANDBOX),
        *(f"--setenv={k}={v}" for k, v in env.items()),
        "--",
        *command,
    ]
    return " ".join(shlex.quote(a) for a in argv) + " 2>&1"


async def install_deps(
    home: FleetHome, shell: VMShell, bot: BotConfig, progress: Progress = no_progress
) -> str:
    """Install the approved dependency list in the VM unless its marker
    says it is installed; what was done, in a few words."""
    name = bot.name
    code = home.code_dir(name)
    deps = await asyncio.to_thread(declared.approved_deps, code, name)
    if not deps.declared:
        return "no dependencies declared"
    declared.approved_declared(deps, name)  # a list npm could read, or one line why
    user = unix_user("gateway", name)
    state = vm_tree(name, "state")
    digest = deps.digest()
    files = deps.files()
    for file, data in files.items():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise InstallError(f"{name}: the approved {file} is not UTF-8 text") from None
    tree = vm_state(shell, user, state, f"{name}: VM {shell.vm}'s state/")
    if await asyncio.to_thread(installed.is_current, tree, digest):
        return "dependencies unchanged"
    await asyncio.to_thread(installed.refuse_planted, tree)
    with locks.gate(home, name, "installing its dependencies"):
        pass  # refused here, before anything, when the kill switch holds the bot
    progress(ProgressEvent("deps", message=f"{name}: dependencies: waiting for the egress proxy"))
    await _wait_port(shell, ports_for(bot).egress, EGRESS_WAIT_S, name)
    staging = await asyncio.to_thread(installed.new_staging, tree, files)
    progress(ProgressEvent("deps", message=f"{name}: dependencies: npm install (through egress)"))
    started = time.monotonic()
    try:
        res = await shell.run(
            npm_argv(bot, staging, command_for(deps)),
            check=False,
            timeout=INSTALL_TIMEOUT_S + 30,
            what="the dependency install",
        )
        keep_and_check(home, name, deps, res.code, res.out + res.err)
        await asyncio.to_thread(installed.swap_in, tree, digest, deps.commit)
    except BaseException:
        # What a failed install leaves: the previous installed/ only.
        await asyncio.shield(asyncio.to_thread(installed.discard_staging, tree))
        raise
    return f"dependencies installed in {time.monotonic() - started:.1f}s"


def vm_state(shell: VMShell, user: str, state: str, where: str) -> installed.ShellState:
    """The VM's `state/` as the install's steps touch it (`installed`):
    each step a script run in it as the gateway's user (`runuser`), so a
    link the agent planted gets it nothing it could not do itself. The
    steps run in a thread; each waits there on the event loop's shell."""
    loop = asyncio.get_running_loop()

    def run(script: str, stdin: bytes | None) -> tuple[int, bytes, str]:
        inner = f"cd -P -- {shlex.quote(state)} && set -u; {script}"
        line = f"runuser -u {shlex.quote(user)} -- sh -c {shlex.quote(inner)}"
        text = None if stdin is None else stdin.decode("utf-8")
        step = shell.run(line, input=text, check=False, what="the install's state/")
        res = asyncio.run_coroutine_threadsafe(step, loop).result()
        return res.code, res.out.encode(), res.err

    return installed.ShellState(run, state, where)


async def _wait_port(shell: VMShell, port: int, timeout: float, bot: str) -> None:
    """Until something accepts on 127.0.0.1:`port` in the VM (the egress)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = await shell.connection()
        try:
            _r, w = await asyncio.wait_for(conn.open_connection("127.0.0.1", port), 2)
        except Exception:
            await asyncio.sleep(0.3)
            continue
        w.close()
        return
    raise InstallError(f"{bot}: the egress proxy did not answer within {timeout:.0f} s")
