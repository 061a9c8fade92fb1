"""securefs's helpers for trees the gateway can write: nothing planted there
(a link, a fifo, a hard link, a huge file) is followed, read or rewritten."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cftui.securefs import (
    UnsafeFile,
    list_agent_dir,
    own_tree,
    read_agent_file,
    write_agent_file,
)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """(the agent's tree, a host file outside it that must stay untouched)."""
    root = tmp_path / "state"
    (root / "agents" / "main" / "agent").mkdir(parents=True)
    (root / "agents" / "main" / "agent" / "models.json").write_text("{}")
    (root / "openclaw.json").write_text('{"a": 1}')
    secret = tmp_path / "host-secret"
    secret.write_text("root only\n")
    os.chmod(secret, 0o600)
    return root, secret


def test_reads_a_regular_file_and_none_when_absent(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    assert read_agent_file(root, "openclaw.json") == b'{"a": 1}'
    assert read_agent_file(root, "agents/main/agent/models.json") == b"{}"
    assert read_agent_file(root, "missing.json") is None
    assert read_agent_file(root, "nodir/x/models.json") is None
    assert read_agent_file(root, "openclaw.json/x") is None  # a file is no directory


def test_read_refuses_a_link_to_a_host_file(tree: tuple[Path, Path]) -> None:
    root, secret = tree
    (root / "openclaw.json").unlink()
    (root / "openclaw.json").symlink_to(secret)
    with pytest.raises(UnsafeFile, match=r"openclaw\.json: it is a symbolic link") as info:
        read_agent_file(root, "openclaw.json")
    assert "\n" not in str(info.value) and "root only" not in str(info.value)


def test_read_refuses_a_link_in_the_middle_of_the_path(tree: tuple[Path, Path]) -> None:
    root, secret = tree
    elsewhere = secret.parent / "elsewhere" / "agent"
    elsewhere.mkdir(parents=True)
    (elsewhere / "models.json").write_text('{"other": "bot"}')
    (root / "agents" / "evil").symlink_to(elsewhere.parent)
    with pytest.raises(UnsafeFile, match=r"agents/evil: it is a symbolic link"):
        read_agent_file(root, "agents/evil/agent/models.json")


def test_read_refuses_a_fifo_without_waiting_for_a_writer(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    os.mkfifo(root / "fifo.json")
    with pytest.raises(UnsafeFile, match="it is a fifo"):
        read_agent_file(root, "fifo.json")


def test_read_refuses_a_hard_link(tree: tuple[Path, Path]) -> None:
    root, secret = tree
    os.link(secret, root / "linked.json")
    with pytest.raises(UnsafeFile, match="hard link"):
        read_agent_file(root, "linked.json")


def test_read_refuses_a_file_over_the_bound(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "big.json").write_bytes(b" " * 5000)
    with pytest.raises(UnsafeFile, match="larger than 4096 bytes"):
        read_agent_file(root, "big.json", max_bytes=4096)


def test_a_link_as_the_tree_itself_is_refused(tree: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = tree
    (tmp_path / "alias").symlink_to(root)
    with pytest.raises(UnsafeFile, match="alias: it is a symbolic link"):
        read_agent_file(tmp_path / "alias", "openclaw.json")


def test_write_replaces_atomically_at_0600(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    before = os.stat(root / "openclaw.json").st_ino
    write_agent_file(root, "openclaw.json", '{"b": 2}')
    st = os.stat(root / "openclaw.json")
    assert (root / "openclaw.json").read_text() == '{"b": 2}'
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_ino != before
    assert sorted(os.listdir(root)) == ["agents", "openclaw.json"]  # no temp file left


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files away needs root")
def test_write_gives_the_file_to_the_owner_of_its_directory(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    os.chown(root, 70123, 70124)
    write_agent_file(root, "new.json", "{}")
    st = os.stat(root / "new.json")
    assert (st.st_uid, st.st_gid) == (70123, 70124)


def test_write_refuses_a_link_and_leaves_its_target_alone(tree: tuple[Path, Path]) -> None:
    root, secret = tree
    (root / "openclaw.json").unlink()
    (root / "openclaw.json").symlink_to(secret)
    with pytest.raises(UnsafeFile, match="symbolic link"):
        write_agent_file(root, "openclaw.json", "{}")
    assert secret.read_text() == "root only\n"
    assert (root / "openclaw.json").is_symlink()


def test_write_refuses_a_hard_link(tree: tuple[Path, Path]) -> None:
    root, secret = tree
    os.link(secret, root / "known-good")
    with pytest.raises(UnsafeFile, match="hard link"):
        write_agent_file(root, "known-good", "{}")
    assert secret.read_text() == "root only\n"


def test_write_does_not_go_through_a_linked_directory(tree: tuple[Path, Path]) -> None:
    root, secret = tree
    (root / "agents" / "evil").symlink_to(secret.parent)
    with pytest.raises(UnsafeFile, match="agents/evil: it is a symbolic link"):
        write_agent_file(root, "agents/evil/host-secret", "pwned")
    assert secret.read_text() == "root only\n"


def test_list_names_links_without_following_them(tree: tuple[Path, Path]) -> None:
    root, secret = tree
    (root / "agents" / "evil").symlink_to(secret.parent)
    assert list_agent_dir(root, "agents") == ["evil", "main"]
    assert list_agent_dir(root, "nothing") == []


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files away needs root")
def test_own_tree_never_reowns_through_a_link_or_a_hard_link(
    tree: tuple[Path, Path], tmp_path: Path
) -> None:
    root, secret = tree
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("host")
    (root / "dirlink").symlink_to(outside)
    (root / "filelink").symlink_to(secret)
    os.link(secret, root / "hard")
    (root / ".git").mkdir()
    left = own_tree(root, 70001, 70002, top=(0, 70002), skip_top=frozenset({".git"}))
    assert left == [str(root / "hard")]
    for host in (secret, outside, outside / "f"):
        assert os.stat(host).st_uid == 0, host
    assert os.lstat(root / "dirlink").st_uid == 70001  # the link itself
    assert os.stat(root / "agents" / "main" / "agent" / "models.json").st_uid == 70001
    assert (os.stat(root).st_uid, os.stat(root).st_gid) == (0, 70002)
    assert os.stat(root / ".git").st_uid == 0


def test_own_tree_refuses_a_tree_nested_absurdly_deep(tmp_path: Path) -> None:
    root = tmp_path / "deep"
    path = root
    for _ in range(140):
        path = path / "d"
    path.mkdir(parents=True)
    with pytest.raises(UnsafeFile, match="nested more than"):
        own_tree(root, os.getuid(), os.getgid())
