"""The Docker runtime against another host's engine, through that host's
one SSH link: images sent there (save | load, cached by id), status read
from there, the kill switch run there, and a host cut off reported, not
waited on. The stack on the remote engine is set up by the test with the
docker CLI on that engine, so these tests need no image built for it (a real
remote start is tests/hosts/test_remote_start.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

from cftui.fleet import FleetHome
from cftui.runtime import Runtimes
from cftui.runtime.docker.spec import LABEL_BOT, LABEL_SERVICE, container_name, int_network
from tests.hosts.testhost import TestHost

DEMO = "cftui/templates/demo-agent"
IMAGE = "clawfactory/base:bookworm"


def _docker(host: TestHost, *args: str) -> str:
    env = dict(os.environ, DOCKER_HOST=host.docker_host)
    out = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _fleet(home: FleetHome, host: TestHost) -> None:
    home.root.mkdir(parents=True, exist_ok=True)
    home.fleet_toml.write_text(host.fleet_entry("h2", f"{host.root}/cf"))


def _stand_in_stack(host: TestHost, bot: str) -> None:
    """A running gateway and llm-proxy of `bot` on the host's engine, named
    and labelled as the runtime names its own, restarted by the engine
    unless told otherwise."""
    _docker(host, "network", "create", "--internal", int_network(bot))
    for service in ("gateway", "llm-proxy"):
        _docker(host, "run", "-d", "--name", container_name(bot, service),
                "--label", f"{LABEL_BOT}={bot}", "--label", f"{LABEL_SERVICE}={service}",
                "--restart", "unless-stopped", "--network", int_network(bot),
                IMAGE, "sleep", "600")  # fmt: skip


def _clear(host: TestHost, bot: str) -> None:
    ids = _docker(host, "ps", "-aq", "--filter", f"label={LABEL_BOT}={bot}").split()
    if ids:
        _docker(host, "rm", "-f", *ids)
    subprocess.run(["docker", "network", "rm", int_network(bot)], capture_output=True,
                   env=dict(os.environ, DOCKER_HOST=host.docker_host))  # fmt: skip


def test_images_go_to_the_host_once(home: FleetHome, remote_host: TestHost, as_operator, cli):
    _fleet(home, remote_host)
    assert cli("init", "far", "--host", "h2", "--code", DEMO).code == 0

    async def go() -> tuple[bool, bool, int]:
        runtimes = Runtimes(home)
        try:
            remote = runtimes.for_bot(home.bot("far"))
            local = runtimes.get("docker")
            first = await local.send_image(IMAGE, remote)  # type: ignore[attr-defined]
            again = await local.send_image(IMAGE, remote)  # type: ignore[attr-defined]
            return first, again, runtimes.links["h2"].connects
        finally:
            await runtimes.aclose()

    first, again, connects = asyncio.run(go())
    assert again is False  # the host holds that image id: nothing sent
    assert connects == 1
    local_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", IMAGE],
                              capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert _docker(remote_host, "image", "inspect", "-f", "{{.Id}}", IMAGE) == local_id
    assert first in (True, False)  # False only when an earlier test sent it


def test_status_and_kill_on_a_remote_host(
    home: FleetHome, remote_host: TestHost, as_operator, cli, docker_client
):
    _fleet(home, remote_host)
    assert cli("init", "far", "--host", "h2", "--code", DEMO).code == 0
    assert cli("init", "near", "--code", DEMO).code == 0
    if not _docker(remote_host, "images", "-q", IMAGE):
        subprocess.run(f"docker save {IMAGE} | DOCKER_HOST={remote_host.docker_host} docker load",
                       shell=True, check=True, capture_output=True)  # fmt: skip
    _stand_in_stack(remote_host, "far")
    try:
        r = cli("status", "--json")
        assert r.code == 0, r.err
        rows = json.loads(r.out)
        far = next(row for row in rows if row["bot"] == "far") if isinstance(rows, list) else rows
        text = json.dumps(far)
        assert "running" in text, text  # read from the remote engine
        # Nothing of it exists on this machine's engine.
        assert not docker_client.containers.list(all=True, filters={"label": f"{LABEL_BOT}=far"})

        r = cli("kill", "--all")
        assert r.code == 0, r.out + r.err
        assert "far" in r.out
        gw = json.loads(_docker(remote_host, "inspect", container_name("far", "gateway")))[0]
        assert gw["State"]["Running"] is False
        assert gw["HostConfig"]["RestartPolicy"]["Name"] == "no"
        assert gw["NetworkSettings"]["Networks"] == {}  # cut before it was killed
        # The marker on the host, written over SFTP, private.
        marker = remote_host.root / "cf" / "locks" / "far.killed"
        assert json.loads(marker.read_text())["bot"] == "far"
        assert marker.stat().st_mode & 0o777 == 0o600
        assert marker.parent.stat().st_mode & 0o777 == 0o700
        assert not (home.root / "cf").exists()
        assert cli("start", "far").code != 0  # locked, and not built here either
        assert cli("unlock", "--all").code == 0

        # The host cut off: the kill reports it in bounded time, the rest is done.
        _docker(remote_host, "start", container_name("far", "gateway"))
        remote_host.cut()
        try:
            r = cli("kill", "--all")
            status = cli("status", "--json")
        finally:
            remote_host.restore()
        assert r.code == 1
        far_line = next(ln for ln in r.out.splitlines() if ln.startswith("far"))
        assert "NOT killed" in far_line and "unreachable" in far_line
        assert "kill marker" in far_line
        assert "Traceback" not in r.out + r.err
        assert "unknown" in status.out and "stopped" not in json.dumps(
            [row for row in json.loads(status.out) if row.get("bot") == "far"]
        )
        cli("unlock", "--all")
    finally:
        _clear(remote_host, "far")


def test_kill_all_with_one_host_cut_off_kills_the_others(
    home: FleetHome, remote_host: TestHost, second_host: TestHost, as_operator, cli
):
    home.root.mkdir(parents=True, exist_ok=True)
    home.fleet_toml.write_text(
        "".join(
            h.fleet_entry(name, f"{h.root}/cf")
            for name, h in (("h2", remote_host), ("h3", second_host))
        )
    )
    for bot, host in (("far", "h2"), ("other", "h3")):
        assert cli("init", bot, "--host", host, "--code", DEMO).code == 0
    for h in (remote_host, second_host):
        if not _docker(h, "images", "-q", IMAGE):
            subprocess.run(f"docker save {IMAGE} | DOCKER_HOST={h.docker_host} docker load",
                           shell=True, check=True, capture_output=True)  # fmt: skip
    _stand_in_stack(remote_host, "far")
    _stand_in_stack(second_host, "other")
    (remote_host.root / "cf" / "locks" / "far.killed").unlink(missing_ok=True)  # an earlier test's
    remote_host.cut()
    try:
        r = cli("kill", "--all")
    finally:
        remote_host.restore()
    try:
        assert r.code == 1, r.out
        lines = {ln.split(":")[0]: ln for ln in r.out.splitlines() if ":" in ln}
        assert "gateway killed" in lines["other"] and "errors" not in lines["other"]
        assert "NOT killed" in lines["far"] and "host h2" in lines["far"]
        gw = json.loads(_docker(second_host, "inspect", container_name("other", "gateway")))[0]
        assert gw["State"]["Running"] is False
        assert gw["HostConfig"]["RestartPolicy"]["Name"] == "no"
        assert (second_host.root / "cf" / "locks" / "other.killed").is_file()
        assert not (remote_host.root / "cf" / "locks" / "far.killed").exists()
        # The cut host's gateway is still up: reported, not claimed killed.
        far = json.loads(_docker(remote_host, "inspect", container_name("far", "gateway")))[0]
        assert far["State"]["Running"] is True
        # The unlock lifts the hosts' markers with the locks.
        assert cli("unlock", "--all").code == 0
        assert not (second_host.root / "cf" / "locks" / "other.killed").exists()
    finally:
        cli("unlock", "--all")
        _clear(remote_host, "far")
        _clear(second_host, "other")
