"""`cftui --run` prints every call made after the run began, even one the log
gained before its follower thread first looked (a loaded machine)."""

from __future__ import annotations

import asyncio
import json
import time

from cfproxies.record import new_record

from cftui.audit.traffic.log import TrafficLog
from cftui.botinit import init_bot
from cftui.cli import headless
from cftui.fleet import FleetHome
from tests.fakes.memory_runtime import MemoryRuntime, MemoryRuntimes


def _call(bot: str, model: str) -> bytes:
    rec = new_record(bot=bot, provider="openai", method="POST", path="/v1/chat", epoch=time.time())
    rec.update(model=model, status=200)
    return json.dumps(rec).encode() + b"\n"


async def test_a_call_written_before_the_follower_looks_is_printed(tmp_path, monkeypatch) -> None:
    home = FleetHome(tmp_path / "fleet")
    init_bot(home, "blue")
    log_path = home.traffic_log("blue")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_bytes(_call("blue", "before-the-run"))
    runtime = MemoryRuntime(home)
    monkeypatch.setattr(headless, "Runtimes", lambda home: MemoryRuntimes(home, runtime))
    opened = TrafficLog.open

    def late_open(self: TrafficLog) -> bool:
        # The run has begun; the call lands before this thread's first look.
        with open(log_path, "ab") as f:
            f.write(_call("blue", "during-the-run"))
        return opened(self)

    monkeypatch.setattr(TrafficLog, "open", late_open)
    out: list[str] = []
    stop = asyncio.Event()
    runs = asyncio.create_task(
        headless.run_bots(home, [home.bot("blue")], out=out.append, err=out.append, stop=stop)
    )
    deadline = time.monotonic() + 10
    while not any("during-the-run" in line for line in out):
        assert time.monotonic() < deadline, out
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(runs, 10)
    assert not any("before-the-run" in line for line in out)
