"""Snapshots: age interop both ways, byte-exact round trips, refusals that
leave the state intact, atomic names, labels, and the gateway around a restore."""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from cftui import locks, snapshots
from cftui.audit.events import read_events
from cftui.errors import SnapshotError, UsageError
from cftui.fleet import BotConfig, FleetHome
from cftui.identity import recipient_of
from cftui.runtime.base import KillReport, Runtime

from .conftest import EXCLUDED, add_member, age_encrypt, kept, require_age, tree


def age_decrypt_extract(home: FleetHome, bot: str, snapshot: Path, dest: Path) -> None:
    require_age()
    dest.mkdir()
    key = home.snapshot_key(bot)
    proc = subprocess.run(
        f"age -d -i '{key}' '{snapshot}' | tar -xf - -C '{dest}'",
        shell=True,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def leftovers(home: FleetHome, bot: str) -> list[str]:
    repo = home.bot_repo(bot)
    return [n for n in os.listdir(repo) if n.startswith(".state-")]


# --- interop and round trips -------------------------------------------------


def test_create_is_readable_by_the_age_cli(home: FleetHome, bot: str, tmp_path: Path) -> None:
    before = tree(home.state_dir(bot))
    info = snapshots.create_snapshot(home, bot, "first")
    out = tmp_path / "out"
    age_decrypt_extract(home, bot, home.snapshots_dir(bot) / info.name, out)
    assert tree(out / "state") == kept(before)


def test_snapshot_leaves_out_caches_temp_files_and_logs(
    home: FleetHome, bot: str, tmp_path: Path
) -> None:
    info = snapshots.create_snapshot(home, bot)
    out = tmp_path / "out"
    age_decrypt_extract(home, bot, home.snapshots_dir(bot) / info.name, out)
    names = set(os.listdir(out / "state"))
    assert not names & set(EXCLUDED)
    assert "openclaw.json" in names


async def test_restore_reads_an_archive_made_by_tar_and_age(
    home: FleetHome, bot: str, tmp_path: Path
) -> None:
    state = home.state_dir(bot)
    expected = tree(state)
    proc = subprocess.run(
        ["tar", "-cf", "-", "-C", str(state.parent), "state"], capture_output=True, check=True
    )
    name = "from-cli--2021-05-06T07-08-09Z.tar.age"
    age_encrypt(home, bot, proc.stdout, home.snapshots_dir(bot) / name)
    (state / "openclaw.json").write_text("changed")
    (state / "new-file").write_text("gone after restore")

    result = await snapshots.restore(home, BotConfig(bot), name)

    assert result.name == name
    assert tree(state) == expected
    assert leftovers(home, bot) == []


async def test_round_trip_is_byte_exact(home: FleetHome, bot: str) -> None:
    state = home.state_dir(bot)
    expected = kept(tree(state))
    snapshots.create_snapshot(home, bot, "good")
    (state / "agents" / "main" / "sessions" / "s1.jsonl").write_bytes(b"overwritten")
    (state / "workspace" / "run.sh").chmod(0o644)
    os.unlink(state / "main-agent")
    (state / "extra").mkdir()

    await snapshots.restore(home, BotConfig(bot), "latest")

    assert tree(state) == expected


def test_names_that_look_like_tar_options_are_archived_as_files(
    home: FleetHome, bot: str, tmp_path: Path
) -> None:
    state = home.state_dir(bot)
    for name in ("-C", "--checkpoint-action=exec=touch planted", "--checkpoint=1", "a\nb"):
        (state / name).write_text(name)
    before = kept(tree(state))
    info = snapshots.create_snapshot(home, bot, "odd-names")
    out = tmp_path / "out"
    age_decrypt_extract(home, bot, home.snapshots_dir(bot) / info.name, out)
    assert tree(out / "state") == before
    assert not (home.bot_repo(bot) / "planted").exists()
    assert not (state / "planted").exists()


def test_exclusions_tell_directories_from_files(home: FleetHome, bot: str, tmp_path: Path) -> None:
    state = home.state_dir(bot)
    (state / "notes.log").mkdir()  # a directory named like a log: kept
    (state / "notes.log" / "kept.md").write_text("kept")
    (state / "workspace" / "logs").write_text("a file named like a cache directory: kept")
    (state / "workspace" / "cache").mkdir()
    (state / "workspace" / "cache" / "x.swp").write_text("left out")
    info = snapshots.create_snapshot(home, bot)
    out = tmp_path / "out"
    age_decrypt_extract(home, bot, home.snapshots_dir(bot) / info.name, out)
    assert (out / "state" / "notes.log" / "kept.md").read_text() == "kept"
    assert (out / "state" / "workspace" / "logs").is_file()
    assert os.listdir(out / "state" / "workspace" / "cache") == []


def test_snapshots_of_the_same_state_are_alike(home: FleetHome, bot: str) -> None:
    key = home.snapshot_key(bot)
    plain = []
    for label in ("one", "two"):
        info = snapshots.create_snapshot(home, bot, label)
        plain.append(
            subprocess.run(
                ["age", "-d", "-i", str(key), str(home.snapshots_dir(bot) / info.name)],
                capture_output=True,
                check=True,
            ).stdout
        )
    assert plain[0] == plain[1]
    with tarfile.open(fileobj=io.BytesIO(plain[0])) as tar:
        names = tar.getnames()
    assert names == sorted(names, key=lambda n: n.split("/")), "parents first, sorted"


async def test_restore_applies_the_data_filters_modes(home: FleetHome, bot: str, crafted) -> None:
    modes = (0o777, 0o750, 0o640, 0o444, 0o070, 0o000, 0o1755)

    def build(tar: tarfile.TarFile) -> None:
        add_member(tar, "state/d", kind=tarfile.DIRTYPE, mode=0o777)
        for mode in modes:
            add_member(tar, f"state/d/f{mode:o}", data=b"x", mode=mode)

    await snapshots.restore(home, BotConfig(bot), crafted(build))
    state = home.state_dir(bot)
    for mode in modes:
        member = tarfile.TarInfo(f"f{mode:o}")
        member.mode = mode
        expected = tarfile.data_filter(member, str(state)).mode
        assert stat.S_IMODE((state / "d" / f"f{mode:o}").stat().st_mode) == expected


async def test_restore_writes_a_file_over_a_link_it_made_only_inside_the_state(
    home: FleetHome, bot: str, crafted
) -> None:
    def build(tar: tarfile.TarFile) -> None:
        add_member(tar, "state/real", data=b"before")
        add_member(tar, "state/alias", kind=tarfile.SYMTYPE, link="real")
        add_member(tar, "state/alias", data=b"after")

    await snapshots.restore(home, BotConfig(bot), crafted(build))
    assert (home.state_dir(bot) / "real").read_bytes() == b"after"


async def test_restore_keeps_a_safety_snapshot_of_the_replaced_state(
    home: FleetHome, bot: str, tmp_path: Path
) -> None:
    state = home.state_dir(bot)
    snapshots.create_snapshot(home, bot, "good")
    (state / "work-since").write_text("would be lost without the safety snapshot")
    before = kept(tree(state))

    result = await snapshots.restore(home, BotConfig(bot))

    assert result.safety and result.safety.startswith("pre-restore--")
    out = tmp_path / "safety"
    age_decrypt_extract(home, bot, home.snapshots_dir(bot) / result.safety, out)
    assert tree(out / "state") == before
    # `latest` still names the operator's own newest snapshot
    assert [s.label for s in snapshots.list_snapshots(home, bot) if s.latest] == ["good"]
    events = [e for e in read_events(home, bot) if e["action"] == "restore"]
    assert events[-1]["ok"] is True and events[-1]["safety"] == result.safety


# --- refusals: the old state stays exactly as it was ------------------------


async def _refused(home: FleetHome, bot: str, name: str, match: str) -> None:
    state = home.state_dir(bot)
    before = tree(state)
    with pytest.raises(SnapshotError, match=match):
        await snapshots.restore(home, BotConfig(bot), name)
    assert tree(state) == before
    assert leftovers(home, bot) == []
    events = [e for e in read_events(home, bot) if e["action"] == "restore"]
    if events:
        assert events[-1]["ok"] is False


async def test_restore_refuses_a_truncated_file(home: FleetHome, bot: str) -> None:
    info = snapshots.create_snapshot(home, bot)
    path = home.snapshots_dir(bot) / info.name
    data = path.read_bytes()
    for cut, label in ((len(data) // 2, "half"), (len(data) - 20, "tail")):
        name = f"{label}--2020-01-01T00-00-00Z.tar.age"
        (home.snapshots_dir(bot) / name).write_bytes(data[:cut])
        await _refused(home, bot, name, "truncated or tampered")


async def test_restore_refuses_a_tampered_file(home: FleetHome, bot: str) -> None:
    info = snapshots.create_snapshot(home, bot)
    data = bytearray((home.snapshots_dir(bot) / info.name).read_bytes())
    data[len(data) * 2 // 3] ^= 0x01
    name = "tampered--2020-01-01T00-00-00Z.tar.age"
    (home.snapshots_dir(bot) / name).write_bytes(bytes(data))
    await _refused(home, bot, name, "truncated or tampered")


async def test_restore_refuses_a_snapshot_for_another_key(home: FleetHome, bot: str) -> None:
    from pyrage import x25519

    other = x25519.Identity.generate()
    require_age()
    name = "other-key--2020-01-01T00-00-00Z.tar.age"
    subprocess.run(
        ["age", "-r", str(other.to_public()), "-o", str(home.snapshots_dir(bot) / name)],
        input=b"not for you",
        check=True,
    )
    await _refused(home, bot, name, "cannot be decrypted with alpha's key")


@pytest.mark.parametrize(
    ("member", "match"),
    [
        (dict(name="state/../escaped"), "contains '..'"),
        (dict(name="state/sub/../../escaped"), "contains '..'"),
        (dict(name="/tmp/cftui-absolute-escape"), "absolute path"),
        (dict(name="elsewhere/file"), "outside state/"),
        (dict(name="state/out", kind=tarfile.SYMTYPE, link="/etc"), "absolute path"),
        (dict(name="state/out", kind=tarfile.SYMTYPE, link="../../.."), "leads out"),
        (dict(name="state/a/out", kind=tarfile.SYMTYPE, link="../b/../../x"), "goes up"),
        (dict(name="state/hard", kind=tarfile.LNKTYPE, link="/etc/passwd"), "absolute path"),
        (dict(name="state/hard", kind=tarfile.LNKTYPE, link="state/../x"), "contains '..'"),
        (dict(name="state/null", kind=tarfile.CHRTYPE), "device or fifo"),
        (dict(name="state/disk", kind=tarfile.BLKTYPE), "device or fifo"),
        (dict(name="state/pipe", kind=tarfile.FIFOTYPE), "device or fifo"),
        (dict(name="state/suid", data=b"#!/bin/sh\n", mode=0o4755), "setuid"),
        (dict(name="state/sgid", data=b"#!/bin/sh\n", mode=0o2755), "setuid"),
    ],
    ids=lambda v: v if isinstance(v, str) else v["name"],
)
async def test_restore_refuses_unsafe_members(
    home: FleetHome, bot: str, crafted, member: dict, match: str
) -> None:
    name = crafted(lambda tar: add_member(tar, **member))
    await _refused(home, bot, name, match)
    assert not Path("/tmp/cftui-absolute-escape").exists()
    assert not (home.bot_repo(bot) / "escaped").exists()


async def test_restore_refuses_path_traversal(home: FleetHome, bot: str, crafted) -> None:
    name = crafted(lambda tar: add_member(tar, "state/../../../escaped", data=b"x"))
    await _refused(home, bot, name, "'..'")
    assert not (home.root / "escaped").exists()


async def test_restore_refuses_writing_through_a_symlink(
    home: FleetHome, bot: str, crafted, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()

    def build(tar: tarfile.TarFile) -> None:
        add_member(tar, "state/dir", kind=tarfile.DIRTYPE, mode=0o755)
        add_member(tar, "state/alias", kind=tarfile.SYMTYPE, link="dir")
        add_member(tar, "state/alias/planted", data=b"through the link")

    await _refused(home, bot, crafted(build), "through a link")


async def test_restore_refuses_a_symlink_chain_leading_out(
    home: FleetHome, bot: str, crafted
) -> None:
    # Each link alone looks inside; together `b` would resolve above the state.
    def build(tar: tarfile.TarFile) -> None:
        add_member(tar, "state/a", kind=tarfile.SYMTYPE, link=".")
        add_member(tar, "state/b", kind=tarfile.SYMTYPE, link="a/..")

    await _refused(home, bot, crafted(build), "goes up after going down")


async def test_restore_refuses_when_the_disk_is_full(
    home: FleetHome, bot: str, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    big = tmp_path / "big" / "state"
    big.mkdir(parents=True)
    (big / "huge.bin").write_bytes(os.urandom(4 << 20))
    archive = subprocess.run(
        ["tar", "-cf", "-", "-C", str(big.parent), "state"], capture_output=True, check=True
    ).stdout
    name = "big--2020-01-01T00-00-00Z.tar.age"
    age_encrypt(home, bot, archive, home.snapshots_dir(bot) / name)
    repo = home.bot_repo(bot)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=700", "tmpfs", str(repo)], check=True
    )
    try:
        (repo / "state").mkdir(mode=0o700)
        (repo / "state" / "small.json").write_text('{"kept": true}')
        before = tree(repo / "state")
        with pytest.raises(SnapshotError, match="disk full"):
            await snapshots.restore(home, BotConfig(bot), name)
        assert tree(repo / "state") == before
        assert leftovers(home, bot) == []
    finally:
        subprocess.run(["umount", str(repo)], check=True)


def test_create_on_a_full_disk_fails_cleanly(home: FleetHome, bot: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    (home.state_dir(bot) / "big.bin").write_bytes(os.urandom(3 << 20))
    folder = home.snapshots_dir(bot)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=700", "tmpfs", str(folder)], check=True
    )
    try:
        with pytest.raises(SnapshotError, match="disk full"):
            snapshots.create_snapshot(home, bot, "too-big")
        assert os.listdir(folder) == []
    finally:
        subprocess.run(["umount", str(folder)], check=True)


async def test_restore_recovers_the_state_a_dead_restore_left_aside(
    home: FleetHome, bot: str
) -> None:
    snapshots.create_snapshot(home, bot, "good")
    state = home.state_dir(bot)
    expected = tree(state)
    # A restore killed between the two renames of the fallback swap.
    aside = home.bot_repo(bot) / ".state-old-999999999-1"
    os.rename(state, aside)
    (home.bot_repo(bot) / ".state-restore-999999999-1").mkdir()
    (aside / "since").write_text("work after the snapshot")

    result = await snapshots.restore(home, BotConfig(bot), "latest")

    assert tree(state) == kept(expected)
    assert leftovers(home, bot) == []
    safety = home.snapshots_dir(bot) / str(result.safety)
    assert safety.is_file(), "the recovered state was saved before being replaced"


# --- atomic names, labels, latest --------------------------------------------


def test_interrupted_create_leaves_no_file_under_a_final_name(home: FleetHome, bot: str) -> None:
    state = home.state_dir(bot)
    for i in range(20):
        (state / f"bulk-{i}.bin").write_bytes(os.urandom(1 << 20))
    first = snapshots.create_snapshot(home, bot, "before")
    script = textwrap.dedent(
        f"""
        import os, signal
        from cftui.fleet import FleetHome
        from cftui import snapshots
        def progress(event):
            if event.done > 5 << 20:
                os.kill(os.getpid(), signal.SIGKILL)  # dies mid-write, like a crash
        snapshots.create_snapshot(FleetHome({str(home.root)!r}), {bot!r}, "doomed",
                                  progress=progress)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    folder = home.snapshots_dir(bot)
    names = os.listdir(folder)
    assert not [n for n in names if n.startswith("doomed--")]
    assert [n for n in names if n.endswith(".partial")], "the partial keeps its temp name"
    assert [s.name for s in snapshots.list_snapshots(home, bot)] == [first.name]
    assert os.readlink(folder / snapshots.LATEST) == first.name
    # The next create clears what the dead one left.
    snapshots.create_snapshot(home, bot, "after")
    assert not [n for n in os.listdir(folder) if n.endswith(".partial")]


def test_a_failing_create_removes_its_temp_file(home: FleetHome, bot: str) -> None:
    def boom(event) -> None:
        if event.done:
            raise KeyboardInterrupt

    with pytest.raises((KeyboardInterrupt, SnapshotError)):
        snapshots.create_snapshot(home, bot, "ctrl-c", progress=boom)
    assert os.listdir(home.snapshots_dir(bot)) == []


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("nightly", "nightly"),
        ("My Label!", "my-label"),
        ("../../etc/passwd", "etc-passwd"),
        ("a--b", "a-b"),
        ("  ", "snapshot"),
        ("ÜBER", "ber"),
        ("x" * 100, "x" * 64),
        ("semi;rm -rf /", "semi-rm-rf"),
    ],
)
def test_labels_are_sanitized(label: str, expected: str) -> None:
    assert snapshots.sanitize_label(label) == expected


def test_snapshot_names_follow_the_contract(home: FleetHome, bot: str) -> None:
    info = snapshots.create_snapshot(home, bot, "Before Upgrade")
    assert snapshots.NAME_RE.match(info.name)
    assert info.name.startswith("before-upgrade--") and info.name.endswith("Z.tar.age")
    assert oct(os.stat(home.snapshots_dir(bot) / info.name).st_mode & 0o777) == "0o600"


def test_latest_points_at_the_newest_and_moves_on_delete(home: FleetHome, bot: str) -> None:
    from datetime import UTC, datetime

    folder = home.snapshots_dir(bot)
    a = snapshots.create_snapshot(home, bot, "a", now=datetime(2026, 1, 1, tzinfo=UTC))
    assert os.readlink(folder / snapshots.LATEST) == a.name
    b = snapshots.create_snapshot(home, bot, "b", now=datetime(2026, 1, 2, tzinfo=UTC))
    assert os.readlink(folder / snapshots.LATEST) == b.name
    assert [s.latest for s in snapshots.list_snapshots(home, bot)] == [True, False]
    with pytest.raises(UsageError, match="cannot be deleted directly"):
        snapshots.delete(home, bot, "latest")
    snapshots.delete(home, bot, b.name)
    assert os.readlink(folder / snapshots.LATEST) == a.name
    snapshots.delete(home, bot, a.name)
    assert not os.path.lexists(folder / snapshots.LATEST)


def test_two_snapshots_in_the_same_second_both_survive(home: FleetHome, bot: str) -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 1, 1, tzinfo=UTC)
    a = snapshots.create_snapshot(home, bot, "same", now=when)
    b = snapshots.create_snapshot(home, bot, "same", now=when)
    assert a.name != b.name
    assert len(snapshots.list_snapshots(home, bot)) == 2


def test_concurrent_creates_in_one_process_both_land(home: FleetHome, bot: str) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC, datetime

    when = datetime(2026, 1, 1, tzinfo=UTC)
    with ThreadPoolExecutor(2) as pool:
        names = list(
            pool.map(lambda _: snapshots.create_snapshot(home, bot, "tui", now=when).name, (1, 2))
        )
    assert len(set(names)) == 2
    assert sorted(s.name for s in snapshots.list_snapshots(home, bot)) == sorted(names)


def test_rename_keeps_time_and_latest(home: FleetHome, bot: str) -> None:
    info = snapshots.create_snapshot(home, bot, "old")
    new = snapshots.rename(home, bot, info.name, "Better Name")
    assert new == info.name.replace("old--", "better-name--")
    assert os.readlink(home.snapshots_dir(bot) / snapshots.LATEST) == new
    with pytest.raises(SnapshotError, match="no snapshot"):
        snapshots.resolve(home, bot, info.name)


@pytest.mark.parametrize("name", ["../../secrets/alpha/snapshot.key", "/etc/passwd", "nope"])
def test_resolve_refuses_names_that_are_not_snapshots(home: FleetHome, bot: str, name: str) -> None:
    with pytest.raises(UsageError, match="not a snapshot name"):
        snapshots.resolve(home, bot, name)


def test_snapshot_events_are_recorded(home: FleetHome, bot: str) -> None:
    info = snapshots.create_snapshot(home, bot, "ev")
    snapshots.delete(home, bot, info.name)
    ops = [e["op"] for e in read_events(home, bot) if e["action"] == "snapshot"]
    assert ops == ["create", "delete"]


def test_create_streams_with_flat_memory(home: FleetHome, bot: str) -> None:
    """A 64 MB file is archived through buffers of about a megabyte."""
    import tracemalloc

    with (home.state_dir(bot) / "big.bin").open("wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    tracemalloc.start()
    snapshots.create_snapshot(home, bot, "big")
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 << 20, f"peak traced memory {peak >> 20} MB"


# --- the gateway around a restore ---------------------------------------------


class RecordingRuntime(Runtime):
    """Records the gateway calls a restore makes (the runtimes themselves are
    tested in their own areas; this checks the order and the lock rule)."""

    name = "recording"

    def __init__(self, home: FleetHome, running: bool) -> None:
        super().__init__(home)
        self.running = running
        self.calls: list[str] = []

    async def check(self) -> None:
        pass

    async def up(self, bot, progress=None) -> None:  # type: ignore[override]
        raise NotImplementedError

    async def down(self, bot) -> None:
        raise NotImplementedError

    async def rebuild(self, bot, progress=None) -> None:  # type: ignore[override]
        raise NotImplementedError

    async def status(self, bots):  # type: ignore[override]
        raise NotImplementedError

    def events(self, bots):  # type: ignore[override]
        raise NotImplementedError

    def logs(self, bot, service, *, follow=True, tail=200):  # type: ignore[override]
        raise NotImplementedError

    async def kill(self, bot) -> KillReport:
        raise NotImplementedError

    async def gateway_running(self, bot) -> bool:
        self.calls.append("running?")
        return self.running

    async def stop_gateway(self, bot) -> None:
        self.calls.append(f"stop (state intact: {self._state_ok(bot)})")
        self.running = False

    async def start_gateway(self, bot) -> None:
        self.calls.append("start")
        self.running = True

    async def pull_state(self, bot) -> None:
        self.calls.append("pull")

    async def push_state(self, bot) -> None:
        self.calls.append("push")

    def _state_ok(self, bot: BotConfig) -> bool:
        return (self.home.state_dir(bot.name) / "openclaw.json").exists()


async def test_restore_stops_and_restarts_a_running_gateway(home: FleetHome, bot: str) -> None:
    snapshots.create_snapshot(home, bot)
    runtime = RecordingRuntime(home, running=True)
    result = await snapshots.restore(home, BotConfig(bot), runtime=runtime)
    assert runtime.calls == ["running?", "stop (state intact: True)", "pull", "push", "start"]
    assert result.gateway_was_running and result.gateway_restarted


async def test_restore_leaves_a_stopped_gateway_stopped(home: FleetHome, bot: str) -> None:
    snapshots.create_snapshot(home, bot)
    runtime = RecordingRuntime(home, running=False)
    result = await snapshots.restore(home, BotConfig(bot), runtime=runtime)
    assert "start" not in runtime.calls and not result.gateway_restarted


async def test_restore_restarts_the_gateway_after_a_failure(
    home: FleetHome, bot: str, crafted
) -> None:
    name = crafted(lambda tar: add_member(tar, "state/../x", data=b"x"))
    runtime = RecordingRuntime(home, running=True)
    with pytest.raises(SnapshotError, match="previous state is unchanged"):
        await snapshots.restore(home, BotConfig(bot), name, runtime=runtime)
    assert runtime.calls[-1] == "start" and runtime.running


async def test_restore_never_restarts_a_locked_bot(home: FleetHome, bot: str) -> None:
    snapshots.create_snapshot(home, bot)
    runtime = RecordingRuntime(home, running=True)
    locks.lock_bots(home, [bot])
    result = await snapshots.restore(home, BotConfig(bot), runtime=runtime)
    assert "start" not in runtime.calls
    assert any("locked" in note for note in result.notes)


async def test_a_wrong_key_is_found_before_the_gateway_is_stopped(
    home: FleetHome, bot: str
) -> None:
    from pyrage import x25519

    snapshots.create_snapshot(home, bot)
    home.snapshot_key(bot).write_text(str(x25519.Identity.generate()) + "\n")
    runtime = RecordingRuntime(home, running=True)
    with pytest.raises(SnapshotError, match="cannot be decrypted"):
        await snapshots.restore(home, BotConfig(bot), runtime=runtime)
    assert runtime.calls == [] and runtime.running


# --- the CLI -------------------------------------------------------------------


def test_cli_create_list_rename_delete(home: FleetHome, bot: str, cli) -> None:
    r = cli("snapshot", "create", bot, "from cli")
    assert r.code == 0 and "from-cli--" in r.out
    r = cli("snapshot", "list", bot, "--json")
    listed = json.loads(r.out)
    assert [s["label"] for s in listed] == ["from-cli"] and listed[0]["latest"]
    r = cli("snapshot", "rename", bot, listed[0]["name"], "renamed")
    assert r.code == 0
    r = cli("snapshot", "list", bot)
    assert "renamed" in r.out and "<- latest" in r.out
    r = cli("snapshot", "delete", bot, "latest")
    assert r.code == 2 and "cannot be deleted directly" in r.err
    r = cli("snapshot", "delete", bot, "--all")
    assert r.code == 2 and "--yes" in r.err
    assert len(snapshots.list_snapshots(home, bot)) == 1
    r = cli("snapshot", "delete", bot, "--all", "--yes")
    assert r.code == 0 and snapshots.list_snapshots(home, bot) == []


def test_cli_restore_restores_the_files_of_a_stopped_bot(home: FleetHome, bot: str, cli) -> None:
    cli("snapshot", "create", bot)
    (home.state_dir(bot) / "openclaw.json").write_text("broken")
    r = cli("snapshot", "restore", bot, "--yes")
    assert r.code == 0, r.err
    assert "restored" in r.out
    assert (home.state_dir(bot) / "openclaw.json").read_text().startswith("{")


def test_cli_restore_without_a_name_asks_or_takes_yes(
    home: FleetHome, bot: str, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`restore BOT` alone restored the newest snapshot at once (issue #22)."""
    cli("snapshot", "create", bot)
    memo = home.state_dir(bot) / "openclaw.json"
    memo.write_text("broken")
    r = cli("snapshot", "restore", bot)  # no terminal to ask on: refused, one line
    assert r.code == 2 and "--yes" in r.err and len(r.err.strip().splitlines()) == 1
    assert memo.read_text() == "broken"
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked: list[str] = []
    answers = iter(["", "n", "y"])

    def answer(question: str) -> str:
        asked.append(question)
        return next(answers)

    monkeypatch.setattr("builtins.input", answer)
    for _ in range(2):  # Enter and "n" both answer no
        r = cli("snapshot", "restore", bot)
        assert r.code == 1 and "nothing restored" in r.out
        assert memo.read_text() == "broken"
    assert "latest snapshot, manual--" in asked[0] and "[y/N]" in asked[0]
    r = cli("snapshot", "restore", bot)
    assert r.code == 0 and "restored" in r.out, r.err
    assert memo.read_text().startswith("{")
    memo.write_text("broken again")
    r = cli("snapshot", "restore", bot, "latest")  # named: the operator's decision
    assert r.code == 0 and len(asked) == 3
    assert memo.read_text().startswith("{")


@pytest.mark.parametrize(
    "args",
    [
        ("snapshot", "restore", "alpha", "../../x"),
        ("snapshot", "restore", "alpha", "nope--2020-01-01T00-00-00Z"),
        ("snapshot", "create", "Bad_Name"),
        ("snapshot", "list", "ghost"),
        ("snapshot", "rename", "alpha", "latest", "x"),
        ("snapshot", "delete", "alpha"),
    ],
)
def test_cli_bad_input_is_one_line(home: FleetHome, bot: str, cli, args: tuple) -> None:
    before = tree(home.state_dir(bot))
    r = cli(*args)
    assert r.code in (1, 2)
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert tree(home.state_dir(bot)) == before


def test_recipient_matches_the_key_file(home: FleetHome, bot: str) -> None:
    assert recipient_of(home, bot).startswith("age1")


# --- small files written directly, in order with the other members ---------------


def _many(tar: tarfile.TarFile, count: int = 200) -> None:
    """Small files (the direct path) before the member under test."""
    add_member(tar, "state/many", kind=tarfile.DIRTYPE, mode=0o755)
    for i in range(count):
        add_member(tar, f"state/many/f{i}", data=os.urandom(3000))


async def test_restore_links_hard_to_a_small_file_just_written(
    home: FleetHome, bot: str, crafted
) -> None:
    def build(tar: tarfile.TarFile) -> None:
        _many(tar)
        add_member(tar, "state/target", data=b"linked")
        add_member(tar, "state/hard", kind=tarfile.LNKTYPE, link="state/target")

    await snapshots.restore(home, BotConfig(bot), crafted(build))
    state = home.state_dir(bot)
    assert (state / "hard").read_bytes() == b"linked"
    assert (state / "hard").stat().st_ino == (state / "target").stat().st_ino
    assert len(os.listdir(state / "many")) == 200


async def test_restore_of_a_name_twice_keeps_the_last_even_through_a_link(
    home: FleetHome, bot: str, crafted
) -> None:
    def build(tar: tarfile.TarFile) -> None:
        _many(tar)
        add_member(tar, "state/twice", data=b"first")
        add_member(tar, "state/twice", data=b"second")
        _many(tar, 50)
        add_member(tar, "state/real", data=b"before")
        add_member(tar, "state/alias", kind=tarfile.SYMTYPE, link="real")
        add_member(tar, "state/alias", data=b"after")

    await snapshots.restore(home, BotConfig(bot), crafted(build))
    state = home.state_dir(bot)
    assert (state / "twice").read_bytes() == b"second"
    assert (state / "real").read_bytes() == b"after"


async def test_restore_refuses_a_member_under_a_small_file_just_written(
    home: FleetHome, bot: str, crafted
) -> None:
    def build(tar: tarfile.TarFile) -> None:
        _many(tar)
        add_member(tar, "state/plain", data=b"a file")
        add_member(tar, "state/plain/inside", data=b"under a file")

    await _refused(home, bot, crafted(build), "written through a link or file")


async def test_restore_writes_big_and_small_files_alike(home: FleetHome, bot: str) -> None:
    from cftui.snapshots.extract import SMALL

    state = home.state_dir(bot)
    sizes = [0, 1, SMALL - 1, SMALL, SMALL + 1, 3 * SMALL]
    for i, size in enumerate(sizes):
        (state / f"sized-{i}").write_bytes(os.urandom(size))
        os.utime(state / f"sized-{i}", (1_000_000_000 + i, 1_000_000_000 + i))
    (state / "sized-0").chmod(0o640)
    expected = kept(tree(state))
    mtimes = {f"sized-{i}": (state / f"sized-{i}").stat().st_mtime for i in range(len(sizes))}
    snapshots.create_snapshot(home, bot, "sizes")
    for i in range(len(sizes)):
        (state / f"sized-{i}").write_bytes(b"changed")

    await snapshots.restore(home, BotConfig(bot), "latest")

    assert tree(state) == expected
    assert {n: (state / n).stat().st_mtime for n in mtimes} == mtimes
