"""`limactl`, run as async subprocesses: the VM's lifecycle and what
`limactl list --json` says about it (status, SSH port, ssh.config).

Lima itself is the dependency; nothing here manages a VM by other means.
`CFTUI_LIMACTL` names another binary (the tests' stand-in); `LIMA_HOME` is
passed through as Lima reads it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cftui.errors import RuntimeOperationError, RuntimeUnavailable

INSTALL_HINT = "install Lima (brew install lima, or see https://lima-vm.io/docs/installation/)"
# How long a graceful `limactl stop` may take before the forced one.
STOP_GRACE_S = 15.0


def lima_home() -> Path:
    """Where Lima keeps its instances (`$LIMA_HOME`, else ~/.lima)."""
    return Path(os.environ.get("LIMA_HOME") or Path.home() / ".lima")


@dataclass(frozen=True)
class Instance:
    """One line of `limactl list --json`."""

    name: str
    status: str
    dir: str = ""
    vm_type: str = ""
    arch: str = ""
    cpus: int = 0
    memory: int = 0
    disk: int = 0
    ssh_port: int = 0
    ssh_address: str = "127.0.0.1"
    ssh_config_file: str = ""
    errors: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        return self.status == "Running"

    @classmethod
    def from_json(cls, raw: dict) -> Instance:
        return cls(
            name=str(raw.get("name", "")),
            status=str(raw.get("status", "")),
            dir=str(raw.get("dir", "")),
            vm_type=str(raw.get("vmType", "")),
            arch=str(raw.get("arch", "")),
            cpus=int(raw.get("cpus") or 0),
            memory=int(raw.get("memory") or 0),
            disk=int(raw.get("disk") or 0),
            ssh_port=int(raw.get("sshLocalPort") or 0),
            ssh_address=str(raw.get("sshAddress") or "127.0.0.1"),
            ssh_config_file=str(raw.get("sshConfigFile") or ""),
            errors=tuple(str(e) for e in raw.get("errors") or ()),
        )


def parse_list_json(text: str) -> dict[str, Instance]:
    """`limactl list --json`: JSON Lines (one object per instance), or, from
    old versions, one JSON array."""
    text = text.strip()
    if not text:
        return {}
    objs: list[dict] = []
    if text.startswith("["):
        objs = json.loads(text)
    else:
        for line in text.splitlines():
            line = line.strip()
            if line:
                objs.append(json.loads(line))
    return {o["name"]: Instance.from_json(o) for o in objs if isinstance(o, dict) and "name" in o}


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def last_line(self) -> str:
        lines = [ln for ln in (self.err or self.out).strip().splitlines() if ln.strip()]
        return lines[-1].strip() if lines else f"exit status {self.code}"


class Limactl:
    """The `limactl` binary, called with asyncio subprocesses."""

    def __init__(self, binary: str | None = None) -> None:
        self._binary = binary or os.environ.get("CFTUI_LIMACTL") or "limactl"

    def path(self) -> str:
        found = shutil.which(self._binary)
        if not found:
            raise RuntimeUnavailable(f"limactl not found: {INSTALL_HINT}")
        return found

    async def run(self, *args: str, timeout: float | None = 900) -> Result:
        proc = await asyncio.create_subprocess_exec(
            self.path(),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeOperationError(
                f"limactl {args[0]} did not finish in {timeout:.0f} s"
            ) from None
        return Result(
            proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
        )

    async def list(self) -> dict[str, Instance]:
        res = await self.run("list", "--json", timeout=30)
        if res.code != 0:
            raise RuntimeUnavailable(f"limactl list failed: {res.last_line()}")
        try:
            return parse_list_json(res.out)
        except (ValueError, KeyError, TypeError) as exc:
            raise RuntimeUnavailable(f"limactl list --json: unreadable output ({exc})") from None

    async def instance(self, name: str) -> Instance | None:
        return (await self.list()).get(name)

    async def create(
        self, name: str, template: Path, *, cpus: int, memory_gib: int, disk_gib: int
    ) -> None:
        """Create the VM; vz first, qemu when this Mac (or host) refuses vz."""
        base = [
            "create",
            "--tty=false",
            f"--name={name}",
            f"--cpus={cpus}",
            f"--memory={memory_gib}",
            f"--disk={disk_gib}",
        ]
        res = await self.run(*base, str(template))
        if res.code != 0 and "vz" in (res.err + res.out).lower():
            res = await self.run(*base, "--vm-type=qemu", str(template))
        if res.code != 0:
            raise RuntimeOperationError(f"limactl create {name} failed: {res.last_line()}")

    async def start(self, name: str) -> None:
        res = await self.run("start", "--tty=false", name)
        if res.code != 0:
            raise RuntimeOperationError(
                f"VM {name} failed to boot: {res.last_line()} "
                f"(see `limactl start {name}` and ~/.lima/{name}/ha.stderr.log)"
            )

    async def stop(self, name: str, *, grace_s: float = STOP_GRACE_S) -> bool:
        """Stop the VM, forced after `grace_s`; True when it was forced."""
        try:
            res = await self.run("stop", name, timeout=grace_s)
            if res.code == 0:
                return False
        except RuntimeOperationError:
            pass
        res = await self.run("stop", "--force", name, timeout=60)
        if res.code != 0:
            raise RuntimeOperationError(f"limactl stop --force {name} failed: {res.last_line()}")
        return True
