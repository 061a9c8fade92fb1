"""The control file: how `cftui` changes a running proxy, and how it hears back.

cftui replaces `{"capture": bool, "allow": [...], "generation": int}`
atomically; this loop polls it (cheap `stat`, every 0.25 s) and applies a
change without a restart. The content present at start is the baseline, not
an order: flags say how the proxy starts. The proxy answers in
`egress.stats.json` (the live state, the last generation applied and the
refusal counters), rewritten only when something changed, and keeps the
ledger of refused requests (`egress.requests.json`) written, at most every
`ledger.WRITE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from cfproxies.egress.ledger import WRITE_SECONDS
from cfproxies.egress.patterns import Allowlist, PatternError
from cfproxies.egress.state import EgressState

log = logging.getLogger("cf-egress")
POLL_SECONDS = 0.25


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def apply_control(state: EgressState, raw: bytes) -> None:
    """Apply one control document; a bad one is logged and changes nothing."""
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        capture = doc.get("capture", state.capture)
        if not isinstance(capture, bool):
            raise ValueError("'capture' must be true or false")
        allow = doc.get("allow")
        allowlist = None
        if allow is not None:
            if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
                raise ValueError("'allow' must be a list of host patterns")
            allowlist = Allowlist.parse(allow)
        generation = doc.get("generation")
    except (ValueError, PatternError) as exc:
        log.error("ignoring the control file: %s", exc)
        return
    if allowlist is not None and allowlist.texts != state.allowlist.texts:
        state.set_allow(allowlist)
    if capture != state.capture:
        try:
            state.set_capture(capture)
        except OSError as exc:  # capture.keys unwritable: stay as we are, say why
            log.error("cannot turn capture %s: %s", "on" if capture else "off", exc)
            return
    if isinstance(generation, int):
        state.control_generation = generation


def write_stats(state: EgressState) -> None:
    """Atomically replace the stats file (0600, like everything in audit/)."""
    path = state.config.stats_file
    data = json.dumps(state.snapshot(), indent=1).encode() + b"\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".egress.stats.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        log.error("cannot write %s: %s", path, exc)


def control_signature(control: Path | None) -> tuple[int, int, int] | None:
    """What the control file looks like now: the baseline, taken before the
    proxy says it is listening, so that a change made right after is seen."""
    return _signature(control) if control else None


async def control_loop(
    state: EgressState, control: Path | None, baseline: tuple[int, int, int] | None
) -> None:
    """Poll the control file and keep the stats and ledger files current,
    until cancelled."""
    seen = baseline
    last_stats: dict | None = None
    ledger_written, ledger_at = 0, 0.0
    while True:
        if control is not None:
            sig = _signature(control)
            if sig is not None and sig != seen:
                seen = sig
                try:
                    raw = control.read_bytes()
                except OSError as exc:
                    log.error("cannot read the control file %s: %s", control, exc)
                else:
                    apply_control(state, raw)
        snap = state.snapshot()
        if snap != last_stats:
            write_stats(state)
            last_stats = snap
        ledger = state.ledger
        now = time.monotonic()
        if (
            ledger is not None
            and ledger.changes != ledger_written
            and now - ledger_at >= WRITE_SECONDS
        ):
            ledger_written, ledger_at = ledger.changes, now
            ledger.write()
        await asyncio.sleep(POLL_SECONDS)
