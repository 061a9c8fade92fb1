"""The red-team review of the agent-facing paths of the remote hosts and
telemetry (wave 2): each test plays the agent, or the host-side user the
agent's proxies run as, against the real parts (a real sshd and SFTP, real
tar and rsync, the proxies' real code) and checks that nothing outside the
bot's own trees moved and that the refusal is one line."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cftui import snapshots
from cftui.audit import mirror
from cftui.botinit import init_bot
from cftui.errors import SnapshotError
from cftui.fleet import FleetHome
from cftui.hosts.layout import HostLayout
from cftui.hosts.ssh import HostLink
from cftui.runtime.docker import remote as remote_mod
from cftui.runtime.docker.audit_mirror import HostAuditMirror, _HostEnd
from cftui.runtime.docker.runtime import DockerRuntime
from cftui.runtime.gateway_uid import gateway_user
from cftui.snapshots.agechild import bot_recipient, spawn
from cftui.snapshots.remote import RemoteState, create_remote_snapshot, restore_remote_state
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


# --- the proposals pull-back from a host ------------------------------------------

DEMO = "cftui/templates/demo-agent"


class CountingLink(HostLink):
    """The real link, counting what the host's commands sent back to a file
    (the tree that comes home)."""

    received = 0

    async def run(self, command: str, *, stdout=None, **kwargs):  # type: ignore[no-untyped-def,override]
        if stdout is None:
            return await super().run(command, **kwargs)
        outer = self

        class Tee:
            def write(self, chunk: bytes) -> int:
                outer.received += len(chunk)
                return stdout.write(chunk)

        return await super().run(command, stdout=Tee(), **kwargs)


def _remote_fleet(home: FleetHome, host: SshdHost, bot: str = "far") -> None:
    home.root.mkdir(parents=True, exist_ok=True)
    home.fleet_toml.write_text(
        f'[hosts.h9]\nurl = "ssh://root@127.0.0.1:{host.port}"\nroot = "{host.root}"\n'
    )
    init_bot(home, bot, code=DEMO, host="h9")


def _host_proposals(home: FleetHome, bot: str = "far") -> Path:
    """The bot's proposals tree on the host, the gateway's user's, as the
    remote start leaves it."""
    tree = Path(HostLayout.of(home.host("h9")).proposals_dir(bot))
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    os.chown(tree, *gateway_user())
    return tree


def _host_state(home: FleetHome, bot: str = "far") -> Path:
    """The bot's `state/` on the host, empty (the sshd host serves the module)."""
    state = Path(HostLayout.of(home.host("h9")).state_dir(bot))
    if state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True)
    return state


def _as_gateway(tree: Path) -> None:
    for path in [tree, *tree.rglob("*")]:
        os.chown(path, *gateway_user(), follow_symlinks=False)


def _pull(home: FleetHome, bot: str = "far") -> CountingLink:
    async def go() -> CountingLink:
        link = CountingLink(home.host("h9"))
        runtime = DockerRuntime(home, link=link)
        try:
            await runtime.pull_proposals(home.bot(bot))
        finally:
            await link.aclose()
        return link

    return asyncio.run(go())


def test_a_huge_sparse_proposal_neither_crosses_the_link_nor_fills_the_operators_disk(
    home: FleetHome, operator: SshdHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sparse file costs the agent nothing on the host; read whole by the
    host's tar it crossed the link and was spooled here in full, then its
    stand-in was copied into the proposals tree by rsync as real zeros.
    Lima's pull carries no file over the scan's limit (`--max-size`): nor
    may this one, and the stand-in stays sparse."""
    monkeypatch.setattr(remote_mod, "MAX_FILE_BYTES", 1 << 20)
    _remote_fleet(home, operator)
    tree = _host_proposals(home)
    (tree / "notes.md").write_text("a proposal\n")
    (tree / "skills").mkdir()
    with open(tree / "skills" / "huge.bin", "wb") as f:
        f.truncate(256 << 20)
    _as_gateway(tree)
    link = _pull(home)
    mine = home.proposals_dir("far")
    assert (mine / "notes.md").read_text() == "a proposal\n"
    huge = mine / "skills" / "huge.bin"
    assert huge.stat().st_size == 256 << 20  # the scan refuses it with its size
    assert huge.stat().st_blocks * 512 < 1 << 20, "the stand-in was written out in full"
    assert link.received < 1 << 20, f"{link.received} bytes crossed the link"
    # A second pull (the stand-in's time differs from the host's file) stays as small.
    _pull(home)
    assert huge.stat().st_blocks * 512 < 1 << 20


def test_a_hostile_host_tree_comes_home_as_plain_files_and_hidden_files_stay(
    home: FleetHome, operator: SshdHost, tmp_path: Path
) -> None:
    """Links out stay links (nothing read through them), fifos and sockets
    do not come, a name with a newline and control characters is a plain
    file, a deep tree comes whole; a directory the agent made unreadable
    afterwards is not taken for a removal (nothing of it is deleted here)."""
    _remote_fleet(home, operator)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret\n")
    tree = _host_proposals(home)
    (tree / "out").symlink_to(outside)
    os.mkfifo(tree / "fifo")
    (tree / "evil\nname\x1b[2J").write_text("x\n")
    deep = tree.joinpath(*["d"] * 60)
    deep.mkdir(parents=True)
    (deep / "leaf.md").write_text("deep\n")
    (tree / "hidden").mkdir()
    (tree / "hidden" / "kept.md").write_text("kept\n")
    _as_gateway(tree)
    _pull(home)
    mine = home.proposals_dir("far")
    assert (mine / "out").is_symlink() and os.readlink(mine / "out") == str(outside)
    assert not os.path.lexists(mine / "fifo")
    assert (mine / "evil\nname\x1b[2J").read_text() == "x\n"
    assert (mine.joinpath(*["d"] * 60) / "leaf.md").read_text() == "deep\n"
    assert (outside / "secret").read_text() == "host secret\n" and len(os.listdir(outside)) == 1
    # The agent hides a directory from its own user: the copy here keeps it.
    (tree / "hidden").chmod(0)
    (tree / "notes.md").write_text("new\n")
    os.chown(tree / "notes.md", *gateway_user())
    _pull(home)
    assert (mine / "notes.md").read_text() == "new\n"
    assert (mine / "hidden" / "kept.md").read_text() == "kept\n"


# --- the audit mirror: what the proxies' user leaves in its audit directory -------


def _far_audit(host: SshdHost, bot: str = "far") -> Path:
    """The bot's audit directory on the host, the proxies' user's."""
    audit = host.root / "audit" / bot
    if audit.exists():
        shutil.rmtree(audit)
    audit.mkdir(parents=True, mode=0o700)
    os.chown(audit, 4242, 4242)
    return audit


def _with_mirror(host: SshdHost, start, body) -> None:  # type: ignore[no-untyped-def]
    """One of the mirror's tasks (`start(end)`) run over a real link to the
    host while `body(task)` plays the proxies' user there; then ended."""

    async def go() -> None:
        link = HostLink(host.config())
        end = _HostEnd(link)
        task = asyncio.create_task(start(end))
        try:
            await body(task)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            end.close()
            await link.aclose()

    asyncio.run(go())


def _mirror_whole(host: SshdHost, pairs: list[tuple[Path, Path]], until) -> None:  # type: ignore[no-untyped-def]
    """`pull_whole` until `until()` holds (or 20 s pass), then a few more
    looks (so that what should not come had its chance)."""

    async def body(task: asyncio.Task[None]) -> None:
        for _ in range(400):
            if until() or task.done():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        if task.done():
            task.result()

    far = [(str(f), n) for f, n in pairs]
    _with_mirror(host, lambda end: mirror.pull_whole(end, far, 0.05), body)


def test_the_mirror_copies_no_link_fifo_or_huge_file_of_the_hosts_audit_directory(
    operator: SshdHost, tmp_path: Path
) -> None:
    """The rewritten files (stats, refused requests, spend) are copied whole
    by root on the host: one replaced by a link to a root file must not
    bring that file here, a fifo must not stall the others, and one far over
    any ledger's size must neither be held in memory as one line nor land
    here cut short."""
    secret = _victim(tmp_path)
    far = _far_audit(operator)
    near = tmp_path / "near"
    near.mkdir(mode=0o700)
    (far / "egress.stats.json").symlink_to(secret)
    os.mkfifo(far / "egress.requests.json")
    (far / "spend.json").write_bytes(b"[" + b'"x",' * (3 << 20) + b'"x"]')
    (far / "ok.json").write_text('{"allowed": 1}\n')
    names = ["egress.stats.json", "egress.requests.json", "spend.json", "ok.json"]
    pairs = [(far / n, near / n) for n in names]
    _mirror_whole(operator, pairs, lambda: (near / "ok.json").exists())
    assert (near / "ok.json").read_text() == '{"allowed": 1}\n'
    assert not (near / "egress.stats.json").exists(), "a link's target was copied"
    assert not (near / "egress.requests.json").exists()
    assert not (near / "spend.json").exists(), "a huge file was copied (or cut short)"
    # Back to sane files, the mirror copies them again.
    for n in names[:3]:
        (far / n).unlink()
        (far / n).write_text(f'{{"{n}": 2}}\n')
    big = b'{"refused": [' + b'"x",' * (750 << 10) + b'"x"]}\n'  # 3 MiB: a full ledger's size
    (far / "ok.json").write_bytes(big)
    _mirror_whole(
        operator,
        pairs,
        lambda: all((near / n).exists() for n in names) and (near / "ok.json").stat().st_size > 99,
    )
    assert [(near / n).read_text() for n in names[:3]] == [f'{{"{n}": 2}}\n' for n in names[:3]]
    assert (near / "ok.json").read_bytes() == big  # one line far past asyncssh's window, whole


def _follow(host: SshdHost, far: Path, near: Path, steps) -> mirror.MirrorCounters:  # type: ignore[no-untyped-def]
    """`follow_file` while `steps` (a coroutine function given a wait-for
    helper) plays the proxies' user on the host."""
    counters = mirror.MirrorCounters()

    async def until(check, what: str) -> None:  # type: ignore[no-untyped-def]
        for _ in range(400):
            if check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"not within 20 s: {what}")

    async def body(_task: asyncio.Task[None]) -> None:
        await steps(until)

    _with_mirror(host, lambda end: mirror.follow_file(end, str(far), near, counters), body)
    return counters


def _lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


def test_the_mirror_follows_no_link_put_at_or_swapped_into_a_log(
    operator: SshdHost, tmp_path: Path
) -> None:
    """traffic.jsonl is tailed by root on the host: a link there (from the
    start, or swapped in for the file it follows) must bring nothing of
    what it points at, while the real file's lines still come."""
    secret = tmp_path / "shadow"
    secret.write_bytes(b'{"root": "secret line"}\n' * 3)
    far = _far_audit(operator)
    log = far / "traffic.jsonl"
    log.symlink_to(secret)
    near = tmp_path / "near" / "traffic.jsonl"

    async def steps(until) -> None:  # type: ignore[no-untyped-def]
        await asyncio.sleep(2.5)  # the mirror has looked (and retried) meanwhile
        assert _lines_of(near) == [], "a link's target was mirrored"
        log.unlink()
        log.write_bytes(b'{"id": "c1"}\n')
        await until(lambda: _lines_of(near) == [b'{"id": "c1"}'], "the real file's line")
        # Swapped for a link while followed: the tail ends, nothing of the target comes.
        log.unlink()
        log.symlink_to(secret)
        await asyncio.sleep(3.0)
        assert b"secret" not in near.read_bytes()
        log.unlink()
        log.write_bytes(b'{"id": "c2"}\n')
        await until(lambda: _lines_of(near)[-1:] == [b'{"id": "c2"}'], "the next file's line")

    _follow(operator, log, near, steps)
    assert b"secret" not in near.read_bytes()


# --- the remote snapshot --------------------------------------------------------


def test_a_sparse_state_over_the_bound_is_refused_before_a_byte_crosses(
    home: FleetHome, operator: SshdHost
) -> None:
    """A sparse file costs the agent nothing on the host and tar reads it
    whole: the state's bound (the bot's disk bound, 64 GiB otherwise) was
    enforced only once that much had crossed the link and been encrypted
    into the snapshots directory here. The sum is taken first now."""
    _remote_fleet(home, operator)
    state = _host_state(home)
    (state / "notes.md").write_text("kept\n")
    with open(state / "huge.bin", "wb") as f:
        f.truncate(8 << 30)
    sent: list[int] = []

    async def go() -> None:
        link = HostLink(home.host("h9"))
        tree = RemoteState(link, "far", asyncio.get_running_loop(), 64 << 20)
        try:
            with pytest.raises(SnapshotError) as refused:
                await asyncio.to_thread(
                    create_remote_snapshot,
                    home,
                    tree,
                    "big",
                    progress=lambda e: sent.append(int(e.done or 0)),
                )
            assert "8192 MiB" in str(refused.value) and "sparse" in str(refused.value)
            assert "\n" not in str(refused.value)
        finally:
            await link.aclose()

    asyncio.run(go())
    assert max(sent, default=0) == 0, f"{max(sent)} bytes were archived first"
    assert snapshots.list_snapshots(home, "far") == []
    assert not [p for p in home.snapshots_dir("far").iterdir() if p.name.endswith(".partial")]


def test_a_sparse_local_state_is_refused_before_the_snapshot_fills_the_disk(
    home: FleetHome,
) -> None:
    """The same on this machine: a snapshot had no bound at all here, and a
    promotion and a restore each take one (their safety snapshot), so a
    sparse file of a terabyte in state/ was a terabyte of ciphertext in
    snapshots/ at the operator's next promote."""
    init_bot(home, "near", code=DEMO)
    state = home.state_dir("near")
    (state / "notes.md").write_text("kept\n")
    with open(state / "huge.bin", "wb") as f:
        f.truncate(1 << 40)
    written: list[int] = []
    with pytest.raises(SnapshotError) as refused:
        snapshots.create_snapshot(
            home, "near", "big", progress=lambda e: written.append(int(e.done or 0))
        )
    limit = home.bot("near").disk_bytes or 0
    assert f"over {limit >> 20} MiB" in str(refused.value) and "sparse" in str(refused.value)
    assert max(written, default=0) < 64 << 20
    assert snapshots.list_snapshots(home, "near") == []
    assert not [p for p in home.snapshots_dir("near").iterdir() if p.name.endswith(".partial")]


def _member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = ""):  # type: ignore[no-untyped-def]
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o644
    return info, data


def _snapshot_of(home: FleetHome, bot: str, members, cut: int = 0) -> Path:  # type: ignore[no-untyped-def]
    """A snapshot file made here of exactly these members (as a hostile host's
    tar could have streamed them at create), encrypted to the bot; `cut`
    bytes taken off its end."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data else None)
    folder = home.snapshots_dir(bot)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crafted-{len(list(folder.iterdir()))}--2026-12-02T00-00-00Z.tar.age"
    with path.open("wb") as out:
        proc = spawn("encrypt", bot_recipient(home, bot), stdin=subprocess.PIPE, stdout=out)
        proc.communicate(raw.getvalue(), timeout=60)
    assert proc.returncode == 0
    if cut:
        with path.open("r+b") as f:
            f.truncate(path.stat().st_size - cut)
    return path


def _huge_header() -> tuple[tarfile.TarInfo, bytes]:
    """A member that says it holds 10 GiB, followed by nothing."""
    info = tarfile.TarInfo("state/huge.bin")
    info.size = 10 << 30
    return info, b""


CRAFTED = {
    "dotdot": [_member("state/../escape", data=b"x")],
    "absolute": [_member("/tmp/cf-review-abs", data=b"x")],
    "link-out": [_member("state/l", tarfile.SYMTYPE, link="/etc")],
    "through-link": [
        _member("state/in", tarfile.SYMTYPE, link="memory"),
        _member("state/in/planted", data=b"x"),
    ],
    "hard-link-out": [_member("state/h", tarfile.LNKTYPE, link="etc/passwd")],
    "device": [_member("state/dev", tarfile.CHRTYPE)],
    "fifo": [_member("state/fifo", tarfile.FIFOTYPE)],
}


WHY = {
    "dotdot": "contains '..'",
    "absolute": "is an absolute path",
    "link-out": "points to the absolute path",
    "through-link": "would be written through a link",
    "hard-link-out": "is outside state/",
    "device": "is a device or fifo",
    "fifo": "is a device or fifo",
    "truncated": "truncated or tampered",
    "huge-member": "not a valid archive",
}


@pytest.mark.parametrize("attack", [*CRAFTED, "truncated", "huge-member"])
def test_a_crafted_remote_restore_is_refused_in_one_line_and_the_state_kept(
    home: FleetHome, operator: SshdHost, attack: str
) -> None:
    _remote_fleet(home, operator)
    state = _host_state(home)
    (state / "memory").mkdir()
    (state / "memory" / "notes.md").write_text("remember\n")
    ok = _member("state/ok.md", data=b"fine\n")
    if attack == "truncated":
        path = _snapshot_of(home, "far", [ok, _member("state/b.md", data=b"y" * 9000)], cut=700)
    elif attack == "huge-member":
        path = _snapshot_of(home, "far", [ok, _huge_header()])
    else:
        path = _snapshot_of(home, "far", [ok, *CRAFTED[attack]])
    before = sorted(str(p.relative_to(state)) for p in state.rglob("*"))

    async def go() -> str:
        link = HostLink(home.host("h9"))
        tree = RemoteState(link, "far", asyncio.get_running_loop(), 64 << 20)
        try:
            with pytest.raises(SnapshotError) as refused:
                await asyncio.to_thread(restore_remote_state, home, tree, path)
            return str(refused.value)
        finally:
            await link.aclose()

    why = asyncio.run(go())
    assert WHY[attack] in why, why
    assert "\n" not in why and "Traceback" not in why, why
    assert sorted(str(p.relative_to(state)) for p in state.rglob("*")) == before
    assert (state / "memory" / "notes.md").read_text() == "remember\n"
    assert not (state / "ok.md").exists()
    leftovers = [p.name for p in state.parent.iterdir() if p.name.startswith(".state-")]
    assert leftovers == [], leftovers
    assert not Path("/tmp/cf-review-abs").exists() and not (state.parent / "escape").exists()


def test_a_stand_in_is_never_sent_back_to_the_host_as_real_zeros(
    home: FleetHome, operator: SshdHost
) -> None:
    """A file the pull left out is a sparse stand-in here; the next push of
    this machine's tree (after a reject or a promotion) read it whole into
    the spool here and wrote it out on the host as real zeros. A sparse
    file over the limit is not sent (a real big file, an approved one, is)."""
    _remote_fleet(home, operator)
    tree = _host_proposals(home)
    with open(tree / "huge.bin", "wb") as f:
        f.truncate(256 << 20)
    (tree / "notes.md").write_text("n\n")
    _as_gateway(tree)
    _pull(home)
    mine = home.proposals_dir("far")
    assert mine.joinpath("huge.bin").stat().st_blocks * 512 < 1 << 20  # the stand-in
    big = os.urandom(1 << 20) * 17  # an approved file over the limit, written out
    mine.joinpath("approved.bin").write_bytes(big)
    sent: list[int] = []

    async def go() -> None:
        link = CountingLink(home.host("h9"))
        runtime = DockerRuntime(home, link=link)
        try:
            original = link.run

            async def run(command: str, *, stdin=None, **kw):  # type: ignore[no-untyped-def]
                if stdin is not None and not isinstance(stdin, bytes):
                    stdin.seek(0, os.SEEK_END)
                    sent.append(stdin.tell())
                    stdin.seek(0)
                return await original(command, stdin=stdin, **kw)

            link.run = run  # type: ignore[method-assign]
            await runtime.push_proposals(home.bot("far"))
        finally:
            await link.aclose()

    asyncio.run(go())
    assert sent and max(sent) < len(big) + (4 << 20), f"{max(sent)} bytes sent"
    assert (tree / "approved.bin").read_bytes() == big
    assert (tree / "notes.md").read_text() == "n\n"
    on_host = tree / "huge.bin"
    assert not on_host.exists() or on_host.stat().st_blocks * 512 < 1 << 20


def test_the_last_catch_up_before_a_delete_reads_no_link_or_fifo_either(
    home: FleetHome, operator: SshdHost, tmp_path: Path
) -> None:
    """`cftui delete` and a move copy the host's audit files one last time
    (HostAuditMirror.catch_up): the same refusals as the live mirror's."""
    _remote_fleet(home, operator)
    secret = tmp_path / "shadow"
    secret.write_bytes(b'{"root": "secret line"}\n')
    far = _far_audit(operator)
    (far / "traffic.jsonl").write_bytes(b'{"id": "c1"}\n')
    (far / "traffic.enc.jsonl").symlink_to(secret)
    (far / "egress.stats.json").symlink_to(secret)
    os.mkfifo(far / "egress.requests.json")
    (far / "spend.json").write_text('{"usd": 1}\n')

    async def go() -> None:
        link = HostLink(home.host("h9"))
        audit = HostAuditMirror(home, link, "far")
        try:
            await asyncio.wait_for(audit.catch_up(), 60)
        finally:
            await audit.stop()
            await link.aclose()

    asyncio.run(go())
    near = home.audit_dir("far")
    assert (near / "traffic.jsonl").read_bytes() == b'{"id": "c1"}\n'
    assert (near / "spend.json").read_text() == '{"usd": 1}\n'
    for name in ("traffic.enc.jsonl", "egress.stats.json", "egress.requests.json"):
        assert not (near / name).exists() or b"secret" not in (near / name).read_bytes(), name
