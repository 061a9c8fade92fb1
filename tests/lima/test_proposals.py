"""The approved tree and its proposals in a Lima VM (issue 17), against the
stand-in: the gateway's unit sees `/code` read-only but for its writable
paths, writes `/proposals`, the VM's proposals come back to the host before
`cftui proposals` reads them, a promotion reaches `/code` in the restarted
gateway, and a link the agent plants in the VM's tree is carried as a link,
never followed.

Everything the gateway does is done from inside its running unit (its mount
namespace, its uid), as in test_stack. The tests run in file order on one
bot (conftest.lima_stack).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from cftui.runtime.lima.plan import unix_user

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

BOT = "lbot"
SKILL = "workspace/skills/probe/SKILL.md"
VM_CODE = f"/srv/clawfactory/bots/{BOT}/code"


def as_gateway(stack, script: str) -> subprocess.CompletedProcess:
    """A shell command inside the running gateway's sandbox, as its user."""
    pid = stack.vm_sh(f"systemctl show -p MainPID --value cf-gateway@{BOT}").stdout.strip()
    assert pid and pid != "0", "the gateway is not running"
    user = unix_user("gateway", BOT)
    return stack.vm_sh(
        f"nsenter -t {pid} -m -S $(id -u {user}) -G $(id -g {user}) sh -c '{script}'",
        check=False,
    )


def cftui(stack, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLAWFACTORY_HOME": str(stack.home.root)}
    return subprocess.run(
        [sys.executable, "-m", "cftui", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def proposals(stack) -> dict:
    res = cftui(stack, "proposals", BOT, "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_code_is_read_only_but_for_its_writable_paths_and_proposals(lima_stack):
    res = as_gateway(lima_stack, "echo evil >> /code/workspace/SOUL.md")
    assert res.returncode != 0 and "Read-only file system" in res.stderr, res.stderr
    for path in ("/code/workspace/skills/x", "/code/new", "/code/.git/x"):
        res = as_gateway(lima_stack, f"touch {path}")
        assert res.returncode != 0 and "Read-only file system" in res.stderr, (path, res.stderr)
    res = as_gateway(
        lima_stack,
        f"echo kept > /code/workspace/memory/x && touch /code/workspace/{BOT}_save/y "
        "&& mkdir -p /proposals/workspace/skills/x && echo s > /proposals/workspace/skills/x/y",
    )
    assert res.returncode == 0, res.stderr
    # The note the wiring leaves in its memory says how to propose.
    res = as_gateway(lima_stack, "cat /code/workspace/memory/cftui-proposals.md")
    assert res.returncode == 0 and "/proposals/workspace/skills/" in res.stdout, res.stderr
    # The VM's proposals tree started as the approved tree.
    res = as_gateway(lima_stack, "cat /proposals/workspace/SOUL.md")
    want = (lima_stack.home.code_dir(BOT) / "workspace/SOUL.md").read_text()
    assert res.returncode == 0 and res.stdout == want


def test_the_demo_agent_proposes_and_fails_to_rewrite_code(lima_stack):
    journal = ""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and "directly failed, as it must" not in journal:
        journal = lima_stack.vm_sh(f"journalctl -u cf-gateway@{BOT} -o cat --no-pager").stdout
        time.sleep(1)
    assert "rewriting /code/workspace/SOUL.md directly failed, as it must" in journal, journal
    assert "APPROVED TREE WRITABLE" not in journal
    assert "proposed skill demo-skill-0 at /proposals/workspace/skills/demo-skill-0" in journal
    paths = [c["path"] for c in proposals(lima_stack)["changes"]]
    assert "workspace/skills/demo-skill-0/SKILL.md" in paths, paths


def test_a_file_proposed_in_the_vm_shows_in_cftui_proposals(lima_stack):
    res = as_gateway(
        lima_stack,
        f'mkdir -p /proposals/workspace/skills/probe && echo "# probe" > /proposals/{SKILL}',
    )
    assert res.returncode == 0, res.stderr
    changes = {c["path"]: c["status"] for c in proposals(lima_stack)["changes"]}
    assert changes.get(SKILL) == "added", changes
    assert changes.get("workspace/skills/x/y") == "added", changes
    # What the host reviews is its own copy, brought home by the scan.
    host = lima_stack.home.proposals_dir(BOT) / SKILL
    assert host.read_text() == "# probe\n"


def test_reject_reaches_the_vms_tree(lima_stack):
    res = cftui(lima_stack, "reject", BOT, "workspace/skills/x")
    assert res.returncode == 0, res.stderr
    gone = as_gateway(lima_stack, "test -e /proposals/workspace/skills/x/y")
    assert gone.returncode != 0, "the rejected file is still in the VM's proposals"
    left = [c["path"] for c in proposals(lima_stack)["changes"]]
    assert "workspace/skills/x/y" not in left and SKILL in left, left


def test_promote_puts_the_proposal_under_code_in_the_restarted_gateway(lima_stack):
    before = lima_stack.vm_sh(f"systemctl show -p MainPID --value cf-gateway@{BOT}").stdout
    res = cftui(lima_stack, "promote", BOT, SKILL, "-m", "probe skill")
    assert res.returncode == 0, res.stderr
    assert "restarted" in res.stdout, res.stdout
    after = lima_stack.vm_sh(f"systemctl show -p MainPID --value cf-gateway@{BOT}").stdout
    assert after != before
    res = as_gateway(lima_stack, f"cat /code/{SKILL}")
    assert res.returncode == 0 and res.stdout == "# probe\n", res.stderr
    # Still read-only there, and the push of the new code/ left the
    # gateway's memory alone (its writable paths are its own in the VM).
    res = as_gateway(lima_stack, f"echo evil > /code/{SKILL}")
    assert res.returncode != 0 and "Read-only file system" in res.stderr
    res = as_gateway(lima_stack, "cat /code/workspace/memory/x")
    assert res.returncode == 0 and res.stdout == "kept\n", res.stderr
    left = [c["path"] for c in proposals(lima_stack)["changes"]]
    assert SKILL not in left, left


async def test_links_planted_in_the_vms_proposals_are_carried_as_links_never_followed(
    lima_stack, tmp_path
):
    # A host file the link names (the VM has no such path; the host does).
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host bytes\n")
    res = as_gateway(
        lima_stack,
        "ln -s /etc/passwd /proposals/workspace/passwd "
        f"&& ln -s {secret} /proposals/workspace/hostfile "
        f"&& ln -s {tmp_path} /proposals/workspace/hostdir "
        "&& ln -s /etc /proposals/workspace/etc",
    )
    assert res.returncode == 0, res.stderr
    found = proposals(lima_stack)
    refused = {r["path"]: r["reason"] for r in found["refused"]}
    for name in ("passwd", "hostfile", "hostdir", "etc"):
        assert "symbolic link" in refused.get(f"workspace/{name}", ""), refused
    host = lima_stack.home.proposals_dir(BOT) / "workspace"
    assert os.readlink(host / "passwd") == "/etc/passwd"
    assert os.readlink(host / "hostfile") == str(secret)
    assert os.readlink(host / "etc") == "/etc"
    # Nothing of the VM's /etc (its users) came over, and the host's file
    # was neither read into the tree nor written through.
    vm_user = f"{unix_user('gateway', BOT)}:"
    for dirpath, _dirs, files in os.walk(lima_stack.home.proposals_dir(BOT)):
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                with open(path, "rb") as f:
                    data = f.read()
                assert vm_user.encode() not in data and b"host bytes" not in data, path
    assert secret.read_text() == "host bytes\n"
    # Pushed back as they are: links again in the VM, nothing written through.
    passwd = lima_stack.vm_sh("md5sum /etc/passwd").stdout
    rt = lima_stack.runtime()
    try:
        await rt.push_proposals(lima_stack.bot)
    finally:
        await rt.aclose()
    res = as_gateway(lima_stack, "readlink /proposals/workspace/etc /proposals/workspace/passwd")
    assert res.stdout.split() == ["/etc", "/etc/passwd"], res.stderr
    assert lima_stack.vm_sh("md5sum /etc/passwd").stdout == passwd
    # Rejecting them removes the links, in the host's tree and the VM's.
    res = cftui(lima_stack, "reject", BOT, *(f"workspace/{n}" for n in refused_names(refused)))
    assert res.returncode == 0, res.stderr
    res = as_gateway(lima_stack, "ls -la /proposals/workspace")
    for name in ("passwd", "hostfile", "hostdir", "etc"):
        assert f" {name} -> " not in res.stdout, res.stdout
    assert not os.path.lexists(host / "passwd")


def refused_names(refused: dict[str, str]) -> list[str]:
    return sorted(p.rsplit("/", 1)[1] for p in refused if p.startswith("workspace/"))


def test_a_huge_or_unreadable_proposal_is_refused_without_crossing(lima_stack):
    # 2 GiB (sparse) under a name that is not UTF-8, and a file it hid.
    res = as_gateway(
        lima_stack,
        'truncate -s 2G /proposals/workspace/big-$(printf "\\377").bin '
        "&& echo x > /proposals/workspace/hidden && chmod 000 /proposals/workspace/hidden",
    )
    assert res.returncode == 0, res.stderr
    found = proposals(lima_stack)
    big = [r for r in found["refused"] if r["path"].startswith("workspace/big-")]
    assert len(big) == 1 and "larger than 16 MiB (2147483648 bytes)" in big[0]["reason"], found
    # Only an empty sparse stand-in of its size is on the host.
    host = lima_stack.home.proposals_dir(BOT) / "workspace"
    (stand_in,) = [p for p in os.listdir(os.fsencode(host)) if p.startswith(b"big-")]
    st = os.lstat(os.path.join(os.fsencode(host), stand_in))
    assert stand_in == b"big-\xff.bin" and st.st_size == 2 << 30 and st.st_blocks < 64
    assert not os.path.lexists(host / "hidden")  # unreadable to the gateway's user too
    res = as_gateway(lima_stack, "rm -f /proposals/workspace/big-* /proposals/workspace/hidden")
    assert res.returncode == 0, res.stderr
    found = proposals(lima_stack)
    assert not [r for r in found["refused"] if r["path"].startswith("workspace/big-")], found


def test_the_tuis_proposal_counts_see_the_vms_proposals(lima_stack):
    from cftui.proposals.counts import ProposalCounts  # no Textual in it

    counts = ProposalCounts()
    before = counts.scan_due(lima_stack.home, [BOT])[BOT].code or 0
    res = as_gateway(lima_stack, "echo n > /proposals/workspace/counted.md")
    assert res.returncode == 0, res.stderr
    host = lima_stack.home.proposals_dir(BOT) / "workspace/counted.md"
    assert not host.exists()
    counts = ProposalCounts()
    # (The demo agent may propose another skill meanwhile: at least one more.)
    assert (counts.scan_due(lima_stack.home, [BOT])[BOT].code or 0) >= before + 1
    assert host.read_text() == "n\n"  # brought home by the counts' own scan
    assert cftui(lima_stack, "reject", BOT, "workspace/counted.md").returncode == 0


@pytest.mark.parametrize(
    ("listed", "reason"),
    [
        ("../state", "must stay inside code/"),
        ("/etc", "must be a relative path"),
        ("workspace/a b", "may hold only"),
        ("workspace/%n", "may hold only"),
        ("workspace/memory\nworkspace/memory/sub", "is inside"),
        ("workspace/evil/sub", "is a link"),
    ],
)
def test_the_vm_checks_the_writable_paths_again(lima_stack, listed, reason):
    conf = f"/etc/clawfactory/bots/{BOT}"
    dropin = f"/etc/systemd/system/cf-gateway@{BOT}.service.d/20-paths.conf"
    kept = lima_stack.vm_sh(f"cat {dropin}").stdout
    lima_stack.vm_sh(
        f"ln -sfn /srv/clawfactory/secrets {VM_CODE}/workspace/evil && cp {conf}/writable /tmp/w",
    )
    try:
        lima_stack.vm_sh(f"cat > {conf}/writable", input=listed + "\n")
        res = lima_stack.vm_sh(
            f"bash /usr/local/lib/clawfactory/gateway-paths.sh {BOT}", check=False
        )
        assert res.returncode != 0 and reason in res.stderr, res.stderr
        # The refusal is one line, and the unit's drop-in is the one it had.
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert lima_stack.vm_sh(f"cat {dropin}").stdout == kept
        assert lima_stack.vm_sh("ls /srv/clawfactory/secrets").returncode == 0
    finally:
        lima_stack.vm_sh(f"rm -f {VM_CODE}/workspace/evil && cp /tmp/w {conf}/writable")
