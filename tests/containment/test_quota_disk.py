"""Issue 15, "/state and /code have no disk quota": the building block that
bounds a bot's tree (`cftui.runtime.disk_quota`), played as the agent filling
its disk from a container run as the gateway runs (uid 1000, no
capabilities, the tree bind-mounted). Not yet wired into the runtime: see
the module's docstring and the report for where it goes."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cftui.runtime import disk_quota, images

SIZE_MB = 32


@pytest.fixture
def bounded(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A bot tree with content, bounded at SIZE_MB; unmounted and thawed after."""
    if os.geteuid() != 0:
        pytest.fail("the disk bound needs root (mount); run the suite as root")
    tree = tmp_path / "bot"
    (tree / "state" / "agents").mkdir(parents=True)
    (tree / "state" / "openclaw.json").write_text('{"a": 1}\n')
    (tree / "state" / "link").symlink_to("/etc/shadow")
    os.chown(tree, 1000, 1000)
    os.chown(tree / "state", 1000, 1000)
    os.chmod(tree / "state", 0o700)
    image = tmp_path / "disks" / "bot.ext4"
    try:
        disk_quota.ensure_bounded(image, tree, SIZE_MB)
        yield image, tree
    finally:
        with contextlib.suppress(Exception):
            disk_quota.release(tree)
        subprocess.run(["chattr", "-i", str(tree)], check=False, capture_output=True)


def test_quota_tree_moves_onto_the_bounded_image_intact(bounded):
    image, tree = bounded
    assert disk_quota.is_bounded(image, tree)
    assert (tree / "state" / "openclaw.json").read_text() == '{"a": 1}\n'
    assert os.readlink(tree / "state" / "link") == "/etc/shadow"  # a link, not the file
    st = os.stat(tree / "state")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1000, 0o700)
    assert os.stat(tree).st_uid == 1000
    assert not (tree / "lost+found").exists()
    assert os.stat(image).st_mode & 0o777 == 0o600
    disk_quota.ensure_bounded(image, tree, SIZE_MB)  # again: nothing to do
    assert disk_quota.mounted_device(tree) is not None


def test_quota_unmounted_tree_refuses_writes_and_comes_back_whole(bounded):
    image, tree = bounded
    disk_quota.release(tree)
    assert not disk_quota.is_bounded(image, tree)
    assert list(tree.iterdir()) == []
    with pytest.raises(PermissionError):
        (tree / "state").mkdir()  # nothing lands beside the bound
    disk_quota.ensure_bounded(image, tree, SIZE_MB)
    assert (tree / "state" / "openclaw.json").read_text() == '{"a": 1}\n'


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_quota_a_gateway_filling_its_state_stops_at_the_bound(docker_client: Any, bounded):
    _, tree = bounded
    if images._image_labels(docker_client, images.BASE_IMAGE) is None:
        pytest.fail(f"{images.BASE_IMAGE} is not built: run scripts/build-images.sh")
    name = f"cftest-quota-{secrets.token_hex(4)}"
    filler = docker_client.containers.run(
        images.BASE_IMAGE,
        ["sh", "-c", "dd if=/dev/zero of=/state/fill bs=1M count=256"],
        name=name,
        detach=True,
        network_mode="none",
        user="1000:1000",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        volumes={str(tree / "state"): {"bind": "/state", "mode": "rw"}},
    )
    try:
        status = filler.wait(timeout=90)["StatusCode"]
        output = filler.logs().decode(errors="replace")
    finally:
        filler.remove(force=True)
    assert status != 0
    assert "No space left on device" in output
    assert os.path.getsize(tree / "state" / "fill") <= SIZE_MB << 20
