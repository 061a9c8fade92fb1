"""`cftui hosts` against a real second Docker Engine reached over SSH
(a network-namespace host, tests/hosts/testhost.py): its engine answers
through the forwarded socket, an unknown host key or a cut-off host is
"unreachable" in one line within the timeout, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from cftui.fleet import FleetHome
from tests.hosts.testhost import TestHost

DEMO = "cftui/templates/demo-agent"


def _fleet(home: FleetHome, host: TestHost) -> None:
    home.root.mkdir(parents=True, exist_ok=True)
    home.fleet_toml.write_text(host.fleet_entry("h2", f"{host.root}/bots"))


def _engine_version(host: TestHost) -> str:
    env = dict(os.environ, DOCKER_HOST=host.docker_host)
    out = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def test_hosts_lists_a_remote_engine(home: FleetHome, cli, remote_host: TestHost, as_operator):
    _fleet(home, remote_host)
    assert cli("init", "far", "--host", "h2", "--code", DEMO).code == 0
    assert cli("init", "near", "--code", DEMO).code == 0
    assert cli("init", "far2", "--host", "h2", "--code", DEMO).code == 0
    r = cli("hosts", "--json", "--timeout", "20")
    assert r.code == 0, r.err
    rows = {row["name"]: row for row in json.loads(r.out)}
    assert list(rows) == ["local", "h2"]
    h2 = rows["h2"]
    assert h2["reachable"] is True, h2["error"]
    assert h2["engine_version"] == _engine_version(remote_host)
    assert (h2["bots"], rows["local"]["bots"]) == (2, 1)
    assert h2["url"] == remote_host.url()
    # It went through sshd with the operator's key, forwarding the engine socket.
    log = (remote_host.root / "sshd.log").read_text()
    assert "Accepted publickey for root" in log
    r = cli("hosts", "--timeout", "20")
    assert r.code == 0 and "h2" in r.out and "reachable" in r.out


def test_an_unknown_host_key_is_unreachable(
    home: FleetHome, cli, remote_host: TestHost, as_operator: Path
):
    _fleet(home, remote_host)
    known = as_operator / ".ssh" / "known_hosts"
    kept = known.read_text()
    known.write_text("")  # the operator never said this key is the host's
    try:
        r = cli("hosts", "--json", "--timeout", "20")
    finally:
        known.write_text(kept)
    h2 = json.loads(r.out)[1]
    assert r.code == 0 and h2["reachable"] is False
    assert "host key" in h2["error"] and "\n" not in h2["error"]
    # A wrong key for the address is refused the same way.
    other = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            str(as_operator / "other")], check=True)  # fmt: skip
    assert other.returncode == 0
    wrong = (as_operator / "other.pub").read_text().split()[:2]
    known.write_text(f"[{remote_host.address}]:2222 {' '.join(wrong)}\n")
    try:
        r = cli("hosts", "--json", "--timeout", "20")
    finally:
        known.write_text(kept)
    h2 = json.loads(r.out)[1]
    assert h2["reachable"] is False and "\n" not in h2["error"]


def test_a_cut_off_host_is_unreachable_in_bounded_time(
    home: FleetHome, cli, remote_host: TestHost, as_operator
):
    _fleet(home, remote_host)
    remote_host.cut()
    try:
        r = cli("hosts", "--timeout", "2")
    finally:
        remote_host.restore()
    assert r.code == 0, r.err
    lines = [ln for ln in r.out.splitlines() if "h2" in ln]
    assert "unreachable" in lines[0]
    why = r.out.splitlines()[lines and r.out.splitlines().index(lines[0]) + 1]
    assert "h2" in why and "is unreachable:" in why and "Traceback" not in r.out + r.err
    local = next(ln for ln in r.out.splitlines() if ln.startswith("local"))
    assert " reachable" in local  # the other hosts are listed all the same
    r = cli("hosts", "--json", "--timeout", "20")
    assert json.loads(r.out)[1]["reachable"] is True  # it comes back with its link
