"""The live local mirror of a remote bot's `audit/<bot>/`, followed over the
host's one SSH link, against a real namespace host with its own sshd and
engine (tests/hosts/testhost.py). The host's files are written here by the
test, as the bot's proxies would write them under the host's root (a start
on a remote host belongs to the remote start): appended lines, a torn
line, a line far over the bound, a file replaced and one shrunk there."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cftui.audit import mirror
from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from cftui.hosts._paths import remote_audit
from cftui.runtime import Runtimes
from tests.hosts.conftest import _make_host
from tests.hosts.testhost import TestHost

DEMO = "cftui/templates/demo-agent"
WAIT_S = 20.0


@pytest.fixture(scope="module")
def audit_host(operator_ssh: Path) -> Iterator[TestHost]:
    """A host of this module's own (netns cfh21m): others' tests may run at once."""
    yield from _make_host(operator_ssh, "cfh21m", 20)


def _fleet(home: FleetHome, host: TestHost, bot: str) -> Path:
    """A fleet whose `bot` lives on `host`; the bot's audit dir there, made
    as the remote start makes it (0700)."""
    home.root.mkdir(parents=True, exist_ok=True)
    root = host.root / f"cf-{home.root.parent.name}"
    home.fleet_toml.write_text(
        f'[hosts.h2]\nurl = "{host.url()}"\ndocker_socket = "{host.docker_sock}"\nroot = "{root}"\n'
    )
    init_bot(home, bot, code=DEMO, host="h2")
    far = Path(remote_audit(home.host("h2"), bot, "traffic.jsonl"))
    far.parent.mkdir(parents=True, mode=0o700)
    return far


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
            assert os.stat(near).st_mode & 0o777 == 0o600
            # A torn line waits for its end; then arrives whole, with one write.
            _append(far, _record(3)[:10])
            _append(far, _record(3)[10:] + _record(4))
            await _until(lambda: _ids(near)[-2:] == ["c3", "c4"], "appended lines")
            # A line far over the bound is dropped, never held whole; the next one is kept.
            _append(far, _record(5, pad=300 << 10) + _record(6))
            await _until(lambda: _ids(near)[-1:] == ["c6"], "the line after a huge one")
            assert "c5" not in _ids(near)
            counters = runtime._mirrors["far"].counters  # type: ignore[attr-defined]
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
            await asyncio.sleep(mirror.WATCH_S * 2.5)  # the host's watcher sees it
            _append(far, _record(9))
            await _until(lambda: _ids(near)[-1:] == ["c9"], "lines after the file shrank")
            assert _ids(near) == ["c1", "c2", "c3", "c4", "c6", "c7", "c8", "c9"]
            assert counters.restarts >= 2
            assert not watcher.done()  # the engine's stream, through the link
            watcher.cancel()
        finally:
            await runtimes.aclose()

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
        try:
            await runtimes.for_bot(bot).follow_audit(bot)
            await _until(lambda: _ids(near) == ["c1"], "the first line")
            audit_host.cut()
            try:
                _append(far, _record(2))
                await asyncio.sleep(1.0)
                assert _ids(near) == ["c1"]
            finally:
                audit_host.restore()
            # The SSH keepalive or the next command finds the link dead; the
            # mirror reconnects by itself. Dropping the link makes that prompt.
            link = runtimes.links["h2"]
            conn = link._conn
            if conn is not None:
                conn.abort()
            await _until(lambda: _ids(near) == ["c1", "c2"], "the line written while cut off")
        finally:
            await runtimes.aclose()

    asyncio.run(go())
