"""A "remote" Docker host made on this machine (the recipe of the shared
reference `test-hosts.md`): a network namespace of its own with a veth to
the machine, a real `dockerd` in it on a socket of its own, and an `sshd`
listening on the namespace's address, which the operator reaches with
their own key and known_hosts. Everything is torn down by `close()`.

Needs root, `ip`, `nsenter`, `dockerd` and `/usr/sbin/sshd`; `build` raises
`HostUnavailable` naming what is missing (a test skips on it, or fails
under CI).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSH_PORT = 2222


class HostUnavailable(Exception):
    """A test host cannot be built on this machine."""


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=60)


@dataclass
class TestHost:
    """One namespace host: `address` is where its sshd listens."""

    netns: str
    index: int  # its /30 in 10.250.<subnet>.0/24: the machine at .4i+1, the host at .4i+2
    root: Path  # this host's own files (data-root, sockets, sshd config)
    pids: list[int] = field(default_factory=list)
    subnet: int = 21  # tests/hosts/conftest.py gives each xdist worker its own

    __test__ = False  # not a pytest class

    @property
    def veth(self) -> str:
        return f"v{self.netns}"

    @property
    def address(self) -> str:
        return f"10.250.{self.subnet}.{4 * self.index + 2}"

    @property
    def machine_address(self) -> str:
        return f"10.250.{self.subnet}.{4 * self.index + 1}"

    @property
    def docker_sock(self) -> Path:
        return self.root / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.docker_sock}"

    def url(self, user: str = "root") -> str:
        return f"ssh://{user}@{self.address}:{SSH_PORT}"

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this host's engine (asserting success when `check`)."""
        env = dict(os.environ, DOCKER_HOST=self.docker_host)
        out = subprocess.run(
            ["docker", *args], env=env, capture_output=True, text=True, timeout=300
        )
        if check:
            assert out.returncode == 0, out.stderr
        return out

    def fleet_entry(self, name: str, root: Path | str, user: str = "root") -> str:
        """This host as fleet.toml's `[hosts.NAME]` table, bots under `root`."""
        return (
            f'[hosts.{name}]\nurl = "{self.url(user)}"\n'
            f'docker_socket = "{self.docker_sock}"\nroot = "{root}"\n'
        )

    def host_public_key(self) -> str:
        return (self.root / "ssh_host_ed25519_key.pub").read_text().strip()

    def known_hosts_line(self) -> str:
        return f"[{self.address}]:{SSH_PORT} {self.host_public_key()}"

    def cut(self) -> None:
        """Take the host off the network (its veth down)."""
        _sh("ip", "link", "set", self.veth, "down")

    def restore(self) -> None:
        _sh("ip", "link", "set", self.veth, "up")

    def build(self, authorized_key: str) -> None:
        for tool in ("ip", "nsenter", "dockerd", "ssh-keygen"):
            if shutil.which(tool) is None:
                raise HostUnavailable(f"{tool} is not installed")
        if not Path("/usr/sbin/sshd").exists():
            raise HostUnavailable("/usr/sbin/sshd is missing (apt-get install openssh-server)")
        if os.geteuid() != 0:
            raise HostUnavailable("test hosts need root (ip netns)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        ns = f"/var/run/netns/{self.netns}"
        _sh("ip", "netns", "add", self.netns)
        _sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", f"{self.veth}i")
        _sh("ip", "link", "set", f"{self.veth}i", "netns", self.netns)
        _sh("ip", "addr", "add", f"{self.machine_address}/30", "dev", self.veth)
        _sh("ip", "link", "set", self.veth, "up")
        _sh(
            "ip",
            "netns",
            "exec",
            self.netns,
            "ip",
            "addr",
            "add",
            f"{self.address}/30",
            "dev",
            f"{self.veth}i",
        )
        _sh("ip", "netns", "exec", self.netns, "ip", "link", "set", f"{self.veth}i", "up")
        _sh("ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up")
        # dockerd: a config file of its own (the machine's daemon.json sets data-root).
        cfg = self.root / "daemon.json"
        cfg.write_text(f'{{"data-root": "{self.root}/data", "storage-driver": "fuse-overlayfs"}}\n')
        log = open(self.root / "dockerd.log", "wb")  # noqa: SIM115 - lives as long as dockerd
        proc = subprocess.Popen(
            ["nsenter", f"--net={ns}", "dockerd", "--config-file", str(cfg),
             "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "docker.pid"),
             "-H", self.docker_host, "--cgroup-parent", f"/{self.netns}"],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        self.pids.append(proc.pid)
        # sshd: its own host key, authorized key and config.
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
            str(self.root / "ssh_host_ed25519_key"))  # fmt: skip
        auth = self.root / "authorized_keys"
        auth.write_text(authorized_key.strip() + "\n")
        auth.chmod(0o600)
        conf = self.root / "sshd_config"
        conf.write_text(
            f"ListenAddress {self.address}\nPort {SSH_PORT}\n"
            f"HostKey {self.root}/ssh_host_ed25519_key\n"
            f"AuthorizedKeysFile {auth}\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            "AllowStreamLocalForwarding yes\nStrictModes no\nUsePAM no\n"
            "Subsystem sftp internal-sftp\n"
            f"PidFile {self.root}/sshd.pid\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)
        sshd = subprocess.Popen(
            ["nsenter", f"--net={ns}", "/usr/sbin/sshd", "-D", "-f", str(conf),
             "-E", str(self.root / "sshd.log")],
            start_new_session=True,
        )  # fmt: skip
        self.pids.append(sshd.pid)
        deadline = time.monotonic() + 60
        env = dict(os.environ, DOCKER_HOST=self.docker_host)
        while time.monotonic() < deadline:
            if proc.poll() is not None or sshd.poll() is not None:
                break
            ok = subprocess.run(["docker", "version"], env=env, capture_output=True, timeout=30)
            if ok.returncode == 0:
                return
            time.sleep(0.5)
        tail = (self.root / "dockerd.log").read_text(errors="replace")[-400:]
        raise HostUnavailable(f"test host {self.netns} did not come up: {' '.join(tail.split())}")

    @staticmethod
    def _sshd_children(parents: list[int]) -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            try:
                status = (proc / "status").read_text()
            except OSError:
                continue
            fields = dict(ln.split(":\t", 1) for ln in status.splitlines() if ":\t" in ln)
            ppid = fields.get("PPid", "").strip()
            if fields.get("Name") == "sshd" and ppid.isdigit() and int(ppid) in parents:
                found.append(int(proc.name))
        return found

    def close(self) -> None:
        # Containers first, so that no shim outlives its engine.
        env = dict(os.environ, DOCKER_HOST=self.docker_host)
        if self.docker_sock.exists():
            ids = subprocess.run(["docker", "ps", "-aq"], env=env, capture_output=True,
                                 text=True, timeout=60).stdout.split()  # fmt: skip
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], env=env, capture_output=True,
                               timeout=120)  # fmt: skip
        # sshd serves each connection in a process of its own session: one
        # still open when the veth goes would wait for its peer for hours.
        for pid in self._sshd_children(self.pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in reversed(self.pids):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        for pid in reversed(self.pids):
            with contextlib.suppress(ChildProcessError):
                for _ in range(100):
                    done, _status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        break
                    time.sleep(0.1)
                else:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
        self.pids.clear()
        _sh("ip", "link", "del", self.veth, check=False)
        _sh("ip", "netns", "del", self.netns, check=False)
        # dockerd's data-root may hold fuse-overlayfs mounts until they are unmounted.
        mounts = Path("/proc/mounts").read_text().splitlines()
        for line in reversed(mounts):
            target = line.split()[1]
            if target.startswith(str(self.root)):
                _sh("umount", "-l", target, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
