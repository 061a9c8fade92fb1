"""The live local mirror of a remote bot's `audit/<bot>/`, followed over the
host's one SSH link, against a real namespace host with its own sshd and
engine (tests/hosts/testhost.py). The host's files are written here by the
test, as the bot's proxies would write them under the host's root (a start
on a remote host belongs to the remote start): appended lines, a torn
line, a line far over the bound, a file replaced and one shrunk there."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cftui import locks, snapshots
from cftui.audit import mirror, mirror_many
from cftui.botinit import init_bot
from cftui.errors import SnapshotError
from cftui.fleet import FleetHome
from cftui.hosts.layout import HostLayout
from cftui.mirrors import AuditMirrors
from cftui.runtime import Runtimes
from cftui.snapshots.agechild import bot_identity, spawn
from cftui.snapshots.remote import RemoteState, create_remote_snapshot
from tests.hosts.conftest import _make_host
from tests.hosts.testhost import TestHost

DEMO = "cftui/templates/demo-agent"
WAIT_S = 20.0


@pytest.fixture(scope="module")
def audit_host(operator_ssh: Path) -> Iterator[TestHost]:
    """A host of this module's own (netns cfh21m): others' tests may run at once."""
    yield from _make_host(operator_ssh, "cfh21m", 20)


def _fleet(home: FleetHome, host: TestHost, bot: str, *more: str) -> Path:
    """A fleet whose `bot` (and `more`) live on `host`; the bot's audit dir
    there, made as the remote start makes it (0700)."""
    home.root.mkdir(parents=True, exist_ok=True)
    root = host.root / f"cf-{home.root.parent.name}"
    home.fleet_toml.write_text(host.fleet_entry("h2", root))
    for name in (bot, *more):
        init_bot(home, name, code=DEMO, host="h2")
        far = Path(HostLayout.of(home.host("h2")).traffic_log(name))
        far.parent.mkdir(parents=True, mode=0o700)
    return Path(HostLayout.of(home.host("h2")).traffic_log(bot))


def _record(n: int, pad: int = 0) -> bytes:
    return json.dumps({"v": 1, "id": f"c{n}", "bot": "far", "pad": "x" * pad}).encode() + b"\n"


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_S:.0f} s: {what}")
        await asyncio.sleep(0.05)


def _host_processes(folder: Path) -> list[str]:
    """Processes whose command line names `folder` (the host shares this machine)."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(folder) in args:
                out.append(args)
    return out


def _ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["id"] for line in path.read_bytes().splitlines()]


def test_a_remote_bots_audit_is_mirrored_live_and_survives_a_hostile_host(
    home: FleetHome, audit_host: TestHost, as_operator: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    far = _fleet(home, audit_host, "far")
    near = home.traffic_log("far")
    monkeypatch.setattr(mirror, "MAX_LINE", 64 << 10)  # the bound, at a size quick to cross
    _append(far, _record(1) + _record(2))
    keys = far.parent / "capture.keys"
    _append(keys, b'{"k": 1, "key": "age..."}\n')

    async def go() -> None:
        runtimes = Runtimes(home)
        bot = home.bot("far")
        runtime = runtimes.for_bot(bot)
        try:
            # The state stream that the TUI and --run watch starts the mirror.
            stream = runtime.events([bot])
            watcher = asyncio.create_task(anext(stream))  # type: ignore[arg-type]
            await _until(lambda: _ids(near) == ["c1", "c2"], "the lines already there")
            kept = home.audit_dir("far") / "capture.keys"
            await _until(lambda: kept.read_bytes().startswith(b'{"k": 1'), "capture.keys")
            # The files the proxies rewrite whole come back as they change.
            stats, copy = far.parent / "egress.stats.json", home.egress_stats("far")
            for n in (1, 2):
                tmp = far.parent / "stats.tmp"
                tmp.write_text(json.dumps({"v": 1, "allowed": n}))
                os.replace(tmp, stats)
                await _until(
                    lambda n=n: copy.exists() and json.loads(copy.read_text())["allowed"] == n,
                    "the egress stats",
                )
            assert os.stat(near).st_mode & 0o777 == 0o600
            # A torn line waits for its end; then arrives whole, with one write.
            _append(far, _record(3)[:10])
            _append(far, _record(3)[10:] + _record(4))
            await _until(lambda: _ids(near)[-2:] == ["c3", "c4"], "appended lines")
            # A line far over the bound is dropped, never held whole; the next one is kept.
            _append(far, _record(5, pad=300 << 10) + _record(6))
            await _until(lambda: _ids(near)[-1:] == ["c6"], "the line after a huge one")
            assert "c5" not in _ids(near)
            counters = runtime._mirror.counters["far"]  # type: ignore[attr-defined]
            assert counters.lines_dropped == 1
            # The file replaced on the host: the mirror keeps what it had and
            # follows the new file from its start.
            fresh = far.with_name("traffic.jsonl.new")
            fresh.write_bytes(_record(7))
            os.replace(fresh, far)
            await _until(lambda: _ids(near)[-1:] == ["c7"], "the replaced file's lines")
            _append(far, _record(8))
            await _until(lambda: _ids(near)[-1:] == ["c8"], "lines after the replacement")
            # Shrunk in place: the same.
            with far.open("r+b") as f:
                f.truncate(0)
            await asyncio.sleep(mirror_many.TICK_S * 10)  # the host's watch sees it
            _append(far, _record(9))
            await _until(lambda: _ids(near)[-1:] == ["c9"], "lines after the file shrank")
            assert _ids(near) == ["c1", "c2", "c3", "c4", "c6", "c7", "c8", "c9"]
            assert counters.restarts >= 2
            assert not watcher.done()  # the engine's stream, through the link
            watcher.cancel()
        finally:
            await runtimes.aclose()
        # Nothing of the mirror outlives its sessions on the host.
        await _until(lambda: not _host_processes(far.parent), "the host's tails and loops to end")

        # A later run resumes where this one stopped: nothing twice, nothing lost.
        _append(far, _record(10))
        runtimes = Runtimes(home)
        try:
            await runtimes.for_bot(home.bot("far")).follow_audit(home.bot("far"))
            await _until(lambda: _ids(near)[-1:] == ["c10"], "a line after a restart")
            await asyncio.sleep(0.5)
            assert _ids(near) == ["c1", "c2", "c3", "c4", "c6", "c7", "c8", "c9", "c10"]
        finally:
            await runtimes.aclose()

    asyncio.run(go())


def test_the_mirror_comes_back_with_a_host_that_dropped_out(
    home: FleetHome, audit_host: TestHost, as_operator: Path
) -> None:
    far = _fleet(home, audit_host, "far")
    near = home.traffic_log("far")
    _append(far, _record(1))

    async def go() -> None:
        runtimes = Runtimes(home)
        bot = home.bot("far")
        runtime = runtimes.for_bot(bot)
        try:
            await runtime.follow_audit(bot)
            await _until(lambda: _ids(near) == ["c1"], "the first line")
            audit_host.cut()
            try:
                _append(far, _record(2))
                await asyncio.sleep(1.0)
                assert _ids(near) == ["c1"]
            finally:
                audit_host.restore()
            # Its connection dropped meanwhile (as sshd or a NAT would): the
            # mirror connects again by itself and resumes where it stopped.
            side = runtime._mirror._end._conn  # type: ignore[attr-defined]
            assert side is not None and side is not runtimes.links["h2"]._conn
            side.abort()
            await _until(lambda: _ids(near) == ["c1", "c2"], "the line written while cut off")
            _append(far, _record(3))
            await _until(lambda: _ids(near) == ["c1", "c2", "c3"], "a line after the reconnect")
        finally:
            await runtimes.aclose()

    asyncio.run(go())


def test_thirty_bots_on_one_host_are_mirrored_by_one_watch_loop_there(
    home: FleetHome, audit_host: TestHost, as_operator: Path
) -> None:
    """Each bot's mirror had tails and watcher loops of its own on the host:
    with thirty bots they forked some 700 processes a second there and a
    line appended waited over a minute for its mirror. One watch loop and
    one reader serve all the host's bots now, over one connection."""
    bots = [f"m{i}" for i in range(30)]
    _fleet(home, audit_host, *bots)
    far = {b: Path(HostLayout.of(home.host("h2")).traffic_log(b)) for b in bots}
    for n, b in enumerate(bots):
        _append(far[b], _record(n))
    stats = far["m29"].parent / "egress.stats.json"
    stats.write_text(json.dumps({"v": 1, "allowed": 29}))
    audit_root = far["m0"].parent.parent

    async def go() -> None:
        runtimes = Runtimes(home)
        try:
            for b in bots:  # as the TUI's state stream and `cftui serve` start them
                await runtimes.for_bot(home.bot(b)).follow_audit(home.bot(b))
            await _until(
                lambda: all(_ids(home.traffic_log(b)) == [f"c{n}"] for n, b in enumerate(bots)),
                "every bot's line",
            )
            await _until(lambda: home.egress_stats("m29").exists(), "a rewritten file")
            for n in (100, 101):
                for b in ("m0", "m17", "m29"):
                    _append(far[b], _record(n))
                await _until(
                    lambda n=n: all(
                        _ids(home.traffic_log(b))[-1:] == [f"c{n}"] for b in ("m0", "m17", "m29")
                    ),
                    f"line c{n} of three bots",
                )
            # On the host: one loop names the bots' files (the reader names
            # none), where each bot had four.
            loops = [p for p in _host_processes(audit_root) if p.startswith("sh -c")]
            assert len(loops) == 1, loops
            assert runtimes.links["h2"].side_connects == 1
        finally:
            await runtimes.aclose()
        await _until(lambda: not _host_processes(audit_root), "the host's loop to end")

    asyncio.run(go())


def test_the_host_mirror_follows_no_link_and_waits_on_no_fifo(
    home: FleetHome, audit_host: TestHost, as_operator: Path, tmp_path: Path
) -> None:
    """What the proxies' user leaves at a name in its audit directory: a
    link is never followed, a fifo never waited on; the rest is mirrored."""
    far = _fleet(home, audit_host, "sly")
    secret = tmp_path / "shadow"
    secret.write_bytes(b'{"root": "secret line"}\n')
    _append(far, _record(1))
    (far.parent / "traffic.enc.jsonl").symlink_to(secret)
    (far.parent / "egress.stats.json").symlink_to(secret)
    os.mkfifo(far.parent / "egress.requests.json")
    (far.parent / "spend.json").write_text('{"usd": 1}\n')
    near = home.audit_dir("sly")

    async def go() -> None:
        runtimes = Runtimes(home)
        try:
            await runtimes.for_bot(home.bot("sly")).follow_audit(home.bot("sly"))
            await _until(lambda: (near / "spend.json").exists(), "the spend ledger")
            await _until(lambda: _ids(near / "traffic.jsonl") == ["c1"], "the first line")
            _append(far, _record(2))
            await _until(lambda: _ids(near / "traffic.jsonl") == ["c1", "c2"], "a later line")
            await asyncio.sleep(1.0)
        finally:
            await runtimes.aclose()

    asyncio.run(go())
    for name in ("traffic.enc.jsonl", "egress.stats.json", "egress.requests.json"):
        local = near / name
        assert not local.exists() or b"secret" not in local.read_bytes(), name


def test_two_mirrors_of_one_bot_copy_each_line_once_and_hand_over(
    home: FleetHome, audit_host: TestHost, as_operator: Path
) -> None:
    """The TUI and `cftui serve` both mirror a remote bot: one copies (the
    local file's lock), the other takes over when the first ends."""
    far = _fleet(home, audit_host, "twice")
    near = home.traffic_log("twice")
    _append(far, _record(1))

    async def go() -> None:
        first, second = Runtimes(home), Runtimes(home)
        bot = home.bot("twice")
        try:
            await first.for_bot(bot).follow_audit(bot)
            await _until(lambda: _ids(near) == ["c1"], "the first line")
            await second.for_bot(bot).follow_audit(bot)
            _append(far, _record(2))
            await _until(lambda: _ids(near) == ["c1", "c2"], "a line while both run")
            await first.aclose()
            _append(far, _record(3))
            await _until(lambda: _ids(near) == ["c1", "c2", "c3"], "a line after the first ended")
            await asyncio.sleep(mirror_many.LOCKED_RETRY_S)
            assert _ids(near) == ["c1", "c2", "c3"]
        finally:
            await first.aclose()
            await second.aclose()

    asyncio.run(go())


def test_a_moved_or_deleted_bots_mirror_lets_go_of_its_old_host(
    home: FleetHome, audit_host: TestHost, as_operator: Path
) -> None:
    """`cftui move` switches a bot's host while `cftui serve` or the TUI
    mirrors it: their AuditMirrors drop the old host's mirror (and the local
    copy's lock it held), so the new host's lines reach the same local
    traffic.jsonl; a deleted bot's mirror ends, and with it the host's loop."""
    old = _fleet(home, audit_host, "mover")
    with home.fleet_toml.open("a") as f:  # the same machine under another root
        f.write(audit_host.fleet_entry("h3", audit_host.root / f"cf-{home.root.parent.name}-b"))
    new = Path(HostLayout.of(home.host("h3")).traffic_log("mover"))
    new.parent.mkdir(parents=True, mode=0o700)
    near = home.traffic_log("mover")
    _append(old, _record(1))

    async def go() -> None:
        runtimes = Runtimes(home)
        mirrors = AuditMirrors(runtimes)
        try:
            await mirrors.sync(list(home.bots().values()))
            await _until(lambda: _ids(near) == ["c1"], "the old host's line")
            assert mirrors.following() == {"mover": "h2"}
            home.update_bot("mover", host="h3")  # as `cftui move` does, once moved
            _append(new, _record(2))
            await mirrors.sync(list(home.bots().values()))
            assert mirrors.following() == {"mover": "h3"}
            await _until(lambda: _ids(near) == ["c1", "c2"], "the new host's line")
            _append(old, _record(9))  # the old host's copy is no longer read
            _append(new, _record(3))
            await _until(lambda: _ids(near) == ["c1", "c2", "c3"], "the next line")
            await asyncio.sleep(mirror_many.LOCKED_RETRY_S)
            assert _ids(near) == ["c1", "c2", "c3"]
            home.remove_bot("mover")
            await mirrors.sync(list(home.bots().values()))
            assert mirrors.following() == {}
            # Nothing left to follow there: no session, so no loop on the host.
            await _until(lambda: not _host_processes(new.parent), "the host's loop to end")
        finally:
            await runtimes.aclose()

    asyncio.run(go())


def test_serve_alone_mirrors_the_remote_bots_audit(
    home: FleetHome, audit_host: TestHost, as_operator: Path
) -> None:
    """Nothing but `cftui serve` runs: the budgets and notifications it
    reads from the fleet home see a remote bot's calls, and a bot made on
    the host while it runs is followed too."""
    far = _fleet(home, audit_host, "served")
    _append(far, _record(1))
    serve = subprocess.Popen(
        [sys.executable, "-m", "cftui", "serve", "--listen", "127.0.0.1:0", "--home", str(home.root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def seen(bot: str, ids: list[str], what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while _ids(home.traffic_log(bot)) != ids:
            assert serve.poll() is None, serve.communicate()[1]
            assert time.monotonic() < deadline, f"not within {WAIT_S:.0f} s: {what}"
            time.sleep(0.05)

    try:
        seen("served", ["c1"], "the line already there")
        _append(far, _record(2))
        seen("served", ["c1", "c2"], "a line appended while serve runs")
        init_bot(home, "later", code=DEMO, host="h2")
        later = Path(HostLayout.of(home.host("h2")).traffic_log("later"))
        later.parent.mkdir(parents=True, mode=0o700)
        _append(later, _record(3))
        seen("later", ["c3"], "the line of a bot made while serve runs")
    finally:
        serve.send_signal(signal.SIGTERM)
        _out, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err
    assert "Traceback" not in err
    deadline = time.monotonic() + WAIT_S
    while _host_processes(far.parent.parent):
        assert time.monotonic() < deadline, _host_processes(far.parent.parent)
        time.sleep(0.1)


# --- snapshots of a remote bot -----------------------------------------------------


def _remote_tree(home: FleetHome, bot: str) -> Path:
    """The bot's `state/` under its host's root (the host shares this file system)."""
    return Path(HostLayout.of(home.host(home.bot(bot).host)).state_dir(bot))


def _plant_state(state: Path) -> None:
    (state / "memory").mkdir(parents=True)
    (state / "memory" / "notes.md").write_text("remember the milk\n")
    (state / "config.json").write_text('{"a": 1}\n')
    (state / "node_modules" / "left").mkdir(parents=True)  # a cache: left out
    (state / "node_modules" / "left" / "big.js").write_text("x" * 1000)
    (state / "run.log").write_text("left out\n")
    (state / "env").mkdir()
    (state / "env" / "pyvenv.cfg").write_text("home = /usr\n")  # a virtualenv: left out
    (state / "here").symlink_to("memory/notes.md")  # a link inside, archived as a link


def _members(home: FleetHome, bot: str, snapshot: Path) -> dict[str, tarfile.TarInfo]:
    """What the snapshot holds, decrypted here with the bot's key."""
    proc = spawn("decrypt", str(snapshot), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _err = proc.communicate(f"{bot_identity(home, bot)}\n".encode(), timeout=60)
    assert proc.returncode == 0
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        return {m.name: m for m in tar.getmembers()}


def _tree(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_text()
        else:
            out[rel] = "/"
    return out


def test_a_remote_bots_state_is_snapshotted_and_restored_over_ssh(
    home: FleetHome, audit_host: TestHost, as_operator: Path
) -> None:
    _fleet(home, audit_host, "far")
    state = _remote_tree(home, "far")
    _plant_state(state)
    os.chown(state, 4321, 4321)

    async def go() -> None:
        runtimes = Runtimes(home)
        bot = home.bot("far")
        runtime = runtimes.for_bot(bot)
        try:
            info = await snapshots.snapshot(home, bot, "before", runtime=runtime)
            snap = home.snapshots_dir("far") / info.name
            names = _members(home, "far", snap)
            assert set(names) == {"state", "state/memory", "state/memory/notes.md",
                                  "state/config.json", "state/here"}  # fmt: skip
            assert names["state/here"].issym()  # a link, never what it points at
            # The agent changes its state; the snapshot puts it back, on the host.
            (state / "memory" / "notes.md").write_text("forgot\n")
            (state / "new.txt").write_text("new\n")
            kept = _tree(state)
            result = await snapshots.restore(home, bot, info.name, runtime=runtime)
            assert result.safety is not None
            assert _tree(state) == {"config.json": '{"a": 1}\n', "here": "-> memory/notes.md",
                                    "memory": "/", "memory/notes.md": "remember the milk\n"}  # fmt: skip
            assert os.stat(state).st_uid == 4321 and os.stat(state / "config.json").st_uid == 4321
            # The safety snapshot holds what was there before.
            safety = _members(home, "far", home.snapshots_dir("far") / result.safety)
            assert "state/new.txt" in safety and set(kept) >= {"new.txt"}
            leftovers = [p.name for p in state.parent.iterdir() if p.name.startswith(".state")]
            assert leftovers == []
        finally:
            await runtimes.aclose()

    asyncio.run(go())
    # The host never held the bot's identity.
    secret = bot_identity(home, "far").encode()
    root = Path(home.host("h2").root)
    assert not any(secret in p.read_bytes() for p in root.rglob("*") if p.is_file())
    events = [json.loads(ln) for ln in home.events_log.read_text().splitlines()]
    assert [(e["action"], e.get("ok", True)) for e in events if e["bot"] == "far"][-2:] == [
        ("snapshot", True), ("restore", True)]  # fmt: skip


def test_a_hostile_remote_state_is_refused_in_one_line_and_left_as_it_was(
    home: FleetHome, audit_host: TestHost, as_operator: Path, cli
) -> None:
    _fleet(home, audit_host, "far")
    state = _remote_tree(home, "far")
    _plant_state(state)
    (state / "out").symlink_to("/etc")  # a link out: archived as a link, refused on restore

    async def go() -> None:
        runtimes = Runtimes(home)
        bot = home.bot("far")
        runtime = runtimes.for_bot(bot)
        try:
            info = await snapshots.snapshot(home, bot, "hostile", runtime=runtime)
            names = _members(home, "far", home.snapshots_dir("far") / info.name)
            assert names["state/out"].issym() and not any(n.startswith("state/out/") for n in names)
            before = _tree(state)
            with pytest.raises(SnapshotError) as refused:
                await snapshots.restore(home, bot, info.name, runtime=runtime)
            assert "leads out of the state" in str(refused.value) or "absolute" in str(
                refused.value
            )
            assert "\n" not in str(refused.value)
            assert _tree(state) == before
            assert not [p for p in state.parent.iterdir() if p.name.startswith(".state-")]
            # A state over the bound is refused, and no snapshot is left of it.
            (state / "out").unlink()
            count = len(snapshots.list_snapshots(home, "far"))
            tree = RemoteState(runtimes.links["h2"], "far", asyncio.get_running_loop(), 4096)
            (state / "big.bin").write_bytes(os.urandom(64 << 10))
            with pytest.raises(SnapshotError, match="over"):
                await asyncio.to_thread(create_remote_snapshot, home, tree, "big")
            assert len(snapshots.list_snapshots(home, "far")) == count
            assert not [
                p for p in home.snapshots_dir("far").iterdir() if p.name.endswith(".partial")
            ]
        finally:
            await runtimes.aclose()

    asyncio.run(go())
    # The CLI says it in one line, with no traceback.
    (state / "out").symlink_to("/etc")
    r = cli("snapshot", "create", "far", "again")
    assert r.code == 0, r.err
    r = cli("snapshot", "restore", "far", "latest", "--yes")
    errors = [ln for ln in r.err.splitlines() if ln.startswith("cftui:")]
    assert r.code == 1 and len(errors) == 1 and "Traceback" not in r.err
    assert "points to the absolute path" in errors[0] and "unchanged" in errors[0]


# --- move and unlock ---------------------------------------------------------------


@pytest.fixture(scope="module")
def other_host(operator_ssh: Path, audit_host: TestHost) -> Iterator[TestHost]:
    """A second host of this module's (netns cfh21n)."""
    yield from _make_host(operator_ssh, "cfh21n", 21)


def _two_hosts(home: FleetHome, a: TestHost, b: TestHost) -> None:
    home.root.mkdir(parents=True, exist_ok=True)
    tag = home.root.parent.name
    home.fleet_toml.write_text(
        "".join(h.fleet_entry(name, f"{h.root}/cf-{tag}") for name, h in (("h2", a), ("h3", b)))
    )


def _host_in_toml(home: FleetHome, bot: str) -> str:
    return home.bot(bot).host


def _actions(home: FleetHome, bot: str) -> list[tuple[str, bool]]:
    events = [json.loads(ln) for ln in home.events_log.read_text().splitlines()]
    return [(e["action"], e.get("ok", True)) for e in events if e.get("bot") == bot]


def test_move_carries_a_bots_state_between_hosts_through_a_snapshot(
    home: FleetHome, audit_host: TestHost, other_host: TestHost, as_operator: Path, cli
) -> None:
    _two_hosts(home, audit_host, other_host)
    init_bot(home, "mover", code=DEMO)
    local_state = home.state_dir("mover")
    _plant_state(local_state)
    expected = _tree(local_state)
    del expected["run.log"], expected["env"], expected["env/pyvenv.cfg"]
    for key in [k for k in expected if k.startswith("node_modules")]:
        del expected[key]
    # local -> h2
    r = cli("move", "mover", "--host", "h2")
    assert r.code == 0, r.err
    assert "moved from local to h2" in r.out and _host_in_toml(home, "mover") == "h2"
    assert _tree(_remote_tree(home, "mover")) == expected
    # h2 -> h3
    on_h2 = _remote_tree(home, "mover")
    r = cli("move", "mover", "--host", "h3")
    assert r.code == 0, r.err
    assert _host_in_toml(home, "mover") == "h3"
    assert _tree(_remote_tree(home, "mover")) == expected
    # h3 -> local, after the bot changed its state there
    (_remote_tree(home, "mover") / "memory" / "notes.md").write_text("learnt on h3\n")
    r = cli("move", "mover", "--host", "local")
    assert r.code == 0, r.err
    assert _host_in_toml(home, "mover") == "local"
    assert (home.state_dir("mover") / "memory" / "notes.md").read_text() == "learnt on h3\n"
    assert not on_h2.exists()  # the old host cleared once the move was done
    assert [a for a in _actions(home, "mover") if a[0] == "move"] == [("move", True)] * 3
    moves = [s.name for s in snapshots.list_snapshots(home, "mover") if s.label == "move"]
    assert len(moves) == 3


def test_move_refuses_an_unknown_or_down_host_and_leaves_the_bot_where_it_was(
    home: FleetHome, audit_host: TestHost, other_host: TestHost, as_operator: Path, cli
) -> None:
    _two_hosts(home, audit_host, other_host)
    init_bot(home, "stay", code=DEMO, host="h2")
    state = _remote_tree(home, "stay")
    _plant_state(state)
    before = _tree(state)
    toml = home.fleet_toml.read_text()
    r = cli("move", "stay", "--host", "nowhere")
    assert r.code == 2 and "no host 'nowhere'" in r.err and len(r.err.strip().splitlines()) == 1
    r = cli("move", "stay", "--host", "h2")
    assert r.code == 2 and "already on host h2" in r.err
    other_host.cut()
    try:
        r = cli("move", "stay", "--host", "h3")
    finally:
        other_host.restore()
    assert r.code == 1 and "unreachable" in r.err and "stays on h2" in r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert home.fleet_toml.read_text() == toml
    # A failure half-way (the target cannot hold the files): nothing switched.
    blocker = Path(home.host("h3").root)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the host's root should be\n")
    r = cli("move", "stay", "--host", "h3")
    assert r.code == 1 and "Traceback" not in r.err, r.err
    assert home.fleet_toml.read_text() == toml and _tree(state) == before
    assert _actions(home, "stay")[-1] == ("move", False)


def test_unlock_removes_the_kill_markers_on_every_host_and_waits_for_a_down_one(
    home: FleetHome, audit_host: TestHost, other_host: TestHost, as_operator: Path, cli
) -> None:
    _two_hosts(home, audit_host, other_host)
    init_bot(home, "one", code=DEMO, host="h2")
    init_bot(home, "two", code=DEMO, host="h3")
    markers = {b: Path(home.host(h).kill_marker(b)) for b, h in (("one", "h2"), ("two", "h3"))}
    r = cli("kill", "one", "two")
    assert all(m.exists() for m in markers.values()), r.out
    r = cli("unlock", "one", "two")
    assert r.code == 0 and "unlocked one, two" in r.out, r.out + r.err
    assert not any(m.exists() for m in markers.values())
    assert not locks.is_locked(home, "one") and not locks.is_locked(home, "two")
    # A host that is down keeps its marker: its bot stays locked, the other is unlocked.
    cli("kill", "one", "two")
    other_host.cut()
    try:
        r = cli("unlock", "--all")
    finally:
        other_host.restore()
    assert r.code == 1
    assert "two: still locked" in r.out and "unreachable" in r.out and "unlocked one" in r.out
    assert locks.is_locked(home, "two") and not locks.is_locked(home, "one")
    assert markers["two"].exists() and not markers["one"].exists()
    r = cli("unlock", "two")
    assert r.code == 0 and not markers["two"].exists() and not locks.is_locked(home, "two")
