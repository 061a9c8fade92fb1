"""The Lima VMs a runtime talks to: one reused SSH shell per VM, one lock
per VM for creating, booting and stopping it, and the setup its bots share
(lima/ and the proxies' wheels pushed, vm-setup.sh run when they changed).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from cftui.errors import RuntimeOperationError, RuntimeUnavailable
from cftui.fleet import BotConfig
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime.images.hashing import tree_hash
from cftui.runtime.lima.assets import lima_dir, render_template, wheelhouse
from cftui.runtime.lima.ctl import Instance, Limactl, lima_home
from cftui.runtime.lima.plan import PROVISION_DIR
from cftui.runtime.lima.ssh import VMShell, rsync
from cftui.runtime.lima.status import ShowCache

# Connecting with a VM's last ssh.config before asking limactl.
FAST_CONNECT_S = 2.0
SETUP_STAMP = "/var/lib/clawfactory/vm-setup.hash"


class VMs:
    """The VMs of one runtime, created, booted and connected to on demand."""

    def __init__(self, limactl: Limactl, shows: ShowCache) -> None:
        self.limactl = limactl
        self.shells: dict[str, VMShell] = {}
        self._shows = shows
        self._locks: dict[str, asyncio.Lock] = {}
        self._setup_done: set[str] = set()

    def lock(self, vm: str) -> asyncio.Lock:
        return self._locks.setdefault(vm, asyncio.Lock())

    async def shell(self, vm: str, inst: Instance | None = None) -> VMShell:
        """The VM's reused SSH connection; the VM must be running."""
        shell = self.shells.get(vm)
        if shell is not None:
            return shell
        if inst is None:
            # Lima's own ssh.config first: a running VM answers at once, and
            # limactl (a process, slow on a busy host) is asked only if not.
            cfg = lima_home() / vm / "ssh.config"
            if cfg.is_file():
                shell = VMShell(vm, cfg)
                try:
                    await shell.connection(timeout=FAST_CONNECT_S)
                except (RuntimeUnavailable, ValueError):
                    await shell.close()
                else:
                    self.shells.setdefault(vm, shell)
                    if self.shells[vm] is not shell:
                        await shell.close()
                    return self.shells[vm]
        inst = inst or await self.limactl.instance(vm)
        if inst is None:
            raise RuntimeUnavailable(f"Lima VM {vm} does not exist: `cftui start` creates it")
        if not inst.running:
            raise RuntimeUnavailable(f"Lima VM {vm} is {inst.status or 'not running'}")
        cfg = Path(inst.ssh_config_file or Path(inst.dir) / "ssh.config")
        shell = VMShell(vm, cfg)
        self.shells[vm] = shell
        return shell

    async def drop(self, vm: str) -> None:
        """Forget a VM's connection (it stopped, or the connection broke)."""
        self._shows.forget(vm)
        shell = self.shells.pop(vm, None)
        if shell is not None:
            await shell.close()
        self._setup_done.discard(vm)

    async def ensure(self, bot: BotConfig, progress: Progress = no_progress) -> VMShell:
        """Create and boot the bot's VM if needed, and set up what its bots share."""
        vm = bot.lima.vm
        async with self.lock(vm):
            inst = await self.limactl.instance(vm)
            if inst is None:
                progress(ProgressEvent("vm", message=f"creating Lima VM {vm}"))
                with tempfile.TemporaryDirectory(prefix="cftui-lima-") as tmp:
                    template = render_template(Path(tmp) / "clawfactory.yaml")
                    await self.limactl.create(
                        vm,
                        template,
                        cpus=bot.lima.cpus,
                        memory_gib=bot.lima.memory_gib,
                        disk_gib=bot.lima.disk_gib,
                    )
                inst = await self.limactl.instance(vm)
            if inst is None or not inst.running:
                await self.drop(vm)
                progress(ProgressEvent("vm", message=f"booting Lima VM {vm}"))
                await self.limactl.start(vm)
                inst = await self.limactl.instance(vm)
                if inst is None or not inst.running:
                    raise RuntimeOperationError(
                        f"VM {vm} failed to boot: limactl reports it stopped"
                    )
            shell = await self.shell(vm, inst)
            if vm not in self._setup_done:
                await provision(shell, progress)
                self._setup_done.add(vm)
            return shell

    async def aclose(self) -> None:
        for vm in list(self.shells):
            await self.drop(vm)


async def provision(shell: VMShell, progress: Progress) -> None:
    """Push lima/ and the wheels, run vm-setup.sh when their content changed."""
    wheels = await wheelhouse(progress)
    src = lima_dir()
    digest = tree_hash(src, wheels)
    cur = await shell.run(f"cat {SETUP_STAMP} 2>/dev/null || true", what="reading the setup stamp")
    if cur.out.strip() == digest:
        return
    progress(ProgressEvent("vm", message="installing the proxies and units in the VM"))
    await shell.run(f"install -d -m 0700 {PROVISION_DIR}", what="provision dir")
    await rsync(
        shell,
        "-a",
        "--delete",
        "--rsync-path=sudo rsync",
        "--exclude=wheels/",
        f"{src}/",
        f"{shell.rsync_shell()[1]}:{PROVISION_DIR}/",
        what="lima/",
    )
    await rsync(
        shell,
        "-a",
        "--delete",
        "--rsync-path=sudo rsync",
        f"{wheels}/",
        f"{shell.rsync_shell()[1]}:{PROVISION_DIR}/wheels/",
        what="the wheelhouse",
    )
    res = await shell.run(
        f"bash {PROVISION_DIR}/provision/vm-setup.sh {PROVISION_DIR} 2>&1",
        check=False,
        timeout=900,
    )
    if res.code != 0:
        raise RuntimeOperationError(
            f"VM {shell.vm}: provisioning step vm-setup.sh failed: {res.reason()}"
        )
    await shell.run(f"echo {digest} > {SETUP_STAMP}", what="writing the setup stamp")
