"""A "remote host" that is only a real `sshd` on this machine's loopback, at a
port of its own, for the containment tests of what cftui does over a host's
SSH link (SFTP writes, the shell steps of a pull) that need no engine there:
the namespace hosts of tests/hosts build a `dockerd` as well, which these
tests would only wait for. The operator is a HOME of the test's making with
its own key and known_hosts, as in tests/hosts/conftest.py.

Needs root (cftui places a host's files as root) and /usr/sbin/sshd; under
CI a missing piece fails, elsewhere it skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cftui.hosts.config import HostConfig
from tests.conftest import IN_CI


@dataclass(frozen=True)
class SshdHost:
    """The sshd's address, the operator's HOME and a host root for cftui."""

    port: int
    operator_home: Path
    root: Path  # the host's root for cftui's layout (on this machine's disk)

    def config(self, name: str = "h9") -> HostConfig:
        return HostConfig(
            name=name,
            url=f"ssh://root@127.0.0.1:{self.port}",
            user="root",
            server="127.0.0.1",
            port=self.port,
            root=str(self.root),
        )


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (a host's files are placed as root)"
    for tool in ("/usr/sbin/sshd", shutil.which("ssh-keygen")):
        if not tool or not Path(tool).exists():
            return f"{tool or 'ssh-keygen'} is not installed"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def sshd_host(work: Path) -> Iterator[SshdHost]:
    """An sshd on 127.0.0.1 that lets the operator of `work/operator` in as root."""
    why = _missing()
    if why:
        if IN_CI:
            pytest.fail(f"an sshd host is required under CI: {why}")
        pytest.skip(why)
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o700)
    operator = work / "operator"
    dot_ssh = operator / ".ssh"
    dot_ssh.mkdir(parents=True, mode=0o700)
    keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", ""]
    subprocess.run([*keygen, "-f", str(dot_ssh / "id_ed25519")], check=True)
    subprocess.run([*keygen, "-f", str(work / "host_key")], check=True)
    auth = work / "authorized_keys"
    auth.write_text((dot_ssh / "id_ed25519.pub").read_text())
    auth.chmod(0o600)
    port = _free_port()
    host_key = (work / "host_key.pub").read_text().split()
    (dot_ssh / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    conf = work / "sshd_config"
    conf.write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {work}/host_key\n"
        f"AuthorizedKeysFile {auth}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        "StrictModes no\nUsePAM no\nSubsystem sftp internal-sftp\n"
        f"PidFile {work}/sshd.pid\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-f", str(conf), "-E", str(work / "sshd.log")],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (work / "sshd.log").read_text(errors="replace")[-300:]
                pytest.fail(f"the test sshd did not come up: {' '.join(log.split())}")
            time.sleep(0.1)
        root = work / "root"
        root.mkdir(mode=0o755)
        yield SshdHost(port, operator, root)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
