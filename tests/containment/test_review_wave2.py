"""The red-team review of the agent-facing paths of the remote hosts and
telemetry (wave 2): each test plays the agent, or the host-side user the
agent's proxies run as, against the real parts (a real sshd and SFTP, real
tar and rsync, the proxies' real code) and checks that nothing outside the
bot's own trees moved and that the refusal is one line."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cftui.hosts.ssh import HostLink
from tests.containment.sshd_host import SshdHost, sshd_host


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdHost]:
    with sshd_host(tmp_path_factory.mktemp("sshd")) as host:
        yield host


@pytest.fixture
def operator(sshd: SshdHost, monkeypatch: pytest.MonkeyPatch) -> SshdHost:
    """HOME is the operator's, so that asyncssh reads their ~/.ssh."""
    monkeypatch.setenv("HOME", str(sshd.operator_home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return sshd


def _victim(tmp_path: Path) -> Path:
    """A root-owned file outside every bot tree, as /etc/passwd would be."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    victim.chmod(0o644)
    os.chown(victim, 0, 0)
    return victim


# --- HostLink.write_private: a link planted where the file is written ---------------


def test_write_private_neither_writes_nor_chowns_through_a_planted_part_link(
    operator: SshdHost, tmp_path: Path
) -> None:
    """The audit directory on the host is the proxies' user's (the mirror
    pushes the egress control file into it, given to that user): that user
    can plant `<name>.part` as a link to a root file before the push. Root's
    SFTP must not truncate, write or chown what it points at."""
    victim = _victim(tmp_path)
    audit = operator.root / "audit" / "far"
    audit.mkdir(parents=True, mode=0o700)
    os.chown(audit, 4242, 4242)
    target = audit / "egress-control.json"
    (audit / "egress-control.json.part").symlink_to(victim)

    async def go() -> None:
        link = HostLink(operator.config())
        try:
            await link.write_private(str(target), b'{"capture": true}\n', owner=(4242, 4242))
        finally:
            await link.aclose()

    asyncio.run(go())
    st = os.lstat(victim)
    assert victim.read_bytes() == b"precious\n"
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert target.read_bytes() == b'{"capture": true}\n' and not target.is_symlink()
    st = os.lstat(target)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (4242, 4242, 0o600)
    assert sorted(os.listdir(audit)) == ["egress-control.json", "egress-control.json.part"]
