"""proposals.mirror on the host alone: a Docker bot's scan asks no runtime
(its gateway writes the host's tree), and a Lima bot whose VM is out of
reach is reviewed from the host's copy, with cftui's own changes marked for
the VM's next start. The VM side runs in tests/lima/test_proposals.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from cftui.proposal_tree import seed
from cftui.proposals import mirror
from cftui.proposals.reject import reject
from cftui.proposals.scan import scan

from .conftest import write


@pytest.fixture
def no_vm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No limactl and an empty LIMA_HOME: every VM is out of reach."""
    monkeypatch.setenv("CFTUI_LIMACTL", str(tmp_path / "no-limactl"))
    monkeypatch.setenv("LIMA_HOME", str(tmp_path / "lima"))


def test_a_docker_bots_scan_asks_no_runtime(home: FleetHome, monkeypatch) -> None:
    init_bot(home, "dock")
    seed.seed(home, "dock")
    write(home.proposals_dir("dock"), "workspace/skills/a/SKILL.md", "# a\n")

    def no_runtime(*_a, **_k):
        raise AssertionError("a Docker bot's scan built a runtime")

    monkeypatch.setattr(mirror, "Runtimes", no_runtime)
    assert [c.path for c in scan(home, "dock").changes] == ["workspace/skills/a/SKILL.md"]
    asyncio.run(mirror.send_back(home, "dock"))


def test_a_lima_bot_out_of_reach_is_reviewed_from_the_hosts_copy(home: FleetHome, no_vm) -> None:
    init_bot(home, "vmbot", runtime="lima")
    seed.seed(home, "vmbot")
    write(home.proposals_dir("vmbot"), "workspace/skills/b/SKILL.md", "# b\n")
    assert [c.path for c in scan(home, "vmbot").changes] == ["workspace/skills/b/SKILL.md"]


def test_a_reject_while_the_vm_is_out_of_reach_waits_for_its_next_start(
    home: FleetHome, no_vm
) -> None:
    init_bot(home, "vmbot", runtime="lima")
    seed.seed(home, "vmbot")
    write(home.proposals_dir("vmbot"), "workspace/skills/c/SKILL.md", "# c\n")
    marker = home.bot_repo("vmbot") / ".lima-push-proposals"
    assert not marker.exists()
    assert asyncio.run(reject(home, "vmbot", ["workspace/skills/c"])) == [
        "workspace/skills/c/SKILL.md"
    ]
    # The host's copy is the newer one now: the next start (or pull) pushes it.
    assert marker.exists() and marker.stat().st_mode & 0o777 == 0o600
    assert scan(home, "vmbot").changes == []
