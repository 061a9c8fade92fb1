"""The shared demo provider is made by one process at a time: two demo
starts at once each created a `cf-demo` network (the engine takes two of
one name), after which attaching by name failed for everyone."""

from __future__ import annotations

import subprocess
import sys
import threading

from cftui import demo

HOLDER = """
import sys, time
from cftui import demo
with demo._provider_lock():
    print("held", flush=True)
    time.sleep(float(sys.argv[1]))
"""


def test_a_second_process_waits_for_the_provider_lock() -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "1.0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        got = threading.Event()

        def take() -> None:
            with demo._provider_lock():
                got.set()

        taker = threading.Thread(target=take)
        taker.start()
        assert not got.wait(0.3), "the lock was taken while another process held it"
        assert holder.wait(10) == 0
        taker.join(5)
        assert got.is_set(), "the lock was not taken after the holder let go"
    finally:
        holder.kill()
        holder.wait()
