"""The capture log's full scan in worker processes agrees with the sequential reader."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import orjson
import pytest
from cfproxies.egress.session import CaptureSession

import cftui.audit.capture as capture
from cftui.audit import rangescan
from cftui.audit.capture import CaptureReader
from cftui.botinit import init_bot
from cftui.errors import CaptureError
from cftui.identity import recipient_of

needs_two_cpus = pytest.mark.skipif(
    rangescan.cpu_count() < 2, reason="one CPU: the full scan runs in-process"
)


def _session(home, bot: str, ids: range, marker: str = "") -> None:
    s = CaptureSession(bot, home.capture_log(bot), home.capture_keys(bot), recipient_of(home, bot))
    for i in ids:
        s.write({"v": 1, "id": f"f{i}", "url": f"https://a.example/{marker}{i}", "pad": "p" * i})
    s.close()


def _small_ranges(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """Scan ranges of `chunk` bytes, in workers even for these small logs."""
    monkeypatch.setattr(capture, "SCAN_CHUNK", chunk)
    monkeypatch.setattr(capture, "SCAN_MIN", 0)


def _damage(path: Path) -> None:
    """Tampered, torn, unknown-key, empty and loosely spaced lines, and a torn tail."""
    lines = path.read_bytes().splitlines(keepends=True)
    for n in (3, 17, 40):
        rec = json.loads(lines[n])
        t = rec["t"]
        rec["t"] = t[:70] + ("A" if t[70] != "A" else "B") + t[71:]
        lines[n] = json.dumps(rec, separators=(",", ":")).encode() + b"\n"
    rec = json.loads(lines[25])
    lines[25] = json.dumps(rec).encode() + b"\n"  # `{"k": ..., "t": ...}`: still readable
    lines[30] = b'{"k":"nope","t":"gAAAA"}\n'
    lines.insert(50, b"not json\n")
    lines.insert(9, b"\n")
    lines.insert(10, lines[11][: len(lines[11]) // 2] + b"\n")  # half a line
    path.write_bytes(b"".join(lines) + lines[5][:33])


@pytest.fixture
def damaged(home) -> tuple:
    init_bot(home, "pbot")
    _session(home, "pbot", range(0, 40))
    _session(home, "pbot", range(40, 70))  # a second key, met only in the middle
    _session(home, "pbot", range(70, 90))
    _damage(home.capture_log("pbot"))
    return home, "pbot"


def _read(home, bot, newest_first: bool, workers: int | None):
    reader = CaptureReader(home, bot)
    got = [(e.offset, e.key_id, e.plaintext) for e in reader.iter_entries(newest_first, workers)]
    s = reader.skipped
    return got, (s.torn, s.tampered, s.unknown_key), reader


@needs_two_cpus
@pytest.mark.parametrize("chunk", [1, 300, 2000, 1 << 20])
@pytest.mark.parametrize("newest_first", [True, False])
def test_parallel_scan_agrees_with_sequential_at_every_boundary(
    damaged, monkeypatch, chunk, newest_first
):
    home, bot = damaged
    seq, seq_skipped, _ = _read(home, bot, newest_first, 1)
    _small_ranges(monkeypatch, chunk)
    par, par_skipped, reader = _read(home, bot, newest_first, None)
    assert par == seq
    assert par_skipped == seq_skipped == (3, 3, 1)  # torn: half line, not json, the tail
    assert len(par) == 90 - 4 and len({k for _, k, _ in par}) == 3
    assert len(reader.keys._open) == 3  # the middle session's key was found and opened


@needs_two_cpus
def test_parallel_scan_counts_a_torn_tail_once(home, monkeypatch):
    init_bot(home, "tbot")
    _session(home, "tbot", range(20))
    path = home.capture_log("tbot")
    path.write_bytes(path.read_bytes() + b'{"k":"x","t":"gAAA')
    _small_ranges(monkeypatch, 100)
    for newest_first in (True, False):
        got, skipped, _ = _read(home, "tbot", newest_first, None)
        assert len(got) == 20 and skipped == (1, 0, 0)


@needs_two_cpus
def test_parallel_scan_with_the_wrong_identity_is_a_clear_error(home, monkeypatch):
    init_bot(home, "wbot")
    init_bot(home, "other")
    _session(home, "wbot", range(30))
    _small_ranges(monkeypatch, 200)
    reader = CaptureReader(home, "wbot", identity_path=home.snapshot_key("other"))
    with pytest.raises(CaptureError, match=r"cannot open capture key .* use the bot's own"):
        list(reader.iter_entries(workers=None))


@needs_two_cpus
def test_a_log_removed_under_the_scan_is_a_clear_error(home, monkeypatch):
    init_bot(home, "gbot")
    _session(home, "gbot", range(200))
    _small_ranges(monkeypatch, 200)
    entries = CaptureReader(home, "gbot").iter_entries(workers=None)
    next(entries)
    home.capture_log("gbot").unlink()
    with pytest.raises(CaptureError, match=r"cannot read .*traffic\.enc\.jsonl"):
        list(entries)


def _files_since(root: str, since: float) -> list[Path]:
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            try:
                st = p.stat()
            except OSError:
                continue
            if st.st_mtime >= since and st.st_size < 50 << 20 and p.is_file():
                out.append(p)
    return out


@needs_two_cpus
def test_parallel_scan_writes_no_key_and_no_plaintext_to_disk(home, monkeypatch, cli):
    init_bot(home, "sbot")
    _session(home, "sbot", range(100), marker="PLAINTEXT-MARKER-")
    _small_ranges(monkeypatch, 500)
    since = time.time() - 1
    r = cli("decrypt", "sbot", "--json", "--oldest-first")  # no --limit: the parallel scan
    assert r.code == 0
    assert [orjson.loads(x)["id"] for x in r.out.splitlines()] == [f"f{i}" for i in range(100)]
    assert rangescan.worker_stats()  # it did run in workers
    reader = CaptureReader(home, "sbot")
    reader.page(1)
    secrets = [b"PLAINTEXT-MARKER-", *reader.keys.opened().values()]
    for p in [*_files_since(str(home.root), 0), *_files_since(tempfile.gettempdir(), since)]:
        if p.name == "traffic.enc.jsonl":
            continue
        try:
            data = p.read_bytes()
        except OSError:
            continue
        assert not any(s in data for s in secrets), p


@needs_two_cpus
def test_a_worker_killed_under_the_scan_is_a_clear_error_and_the_next_scan_works(home, monkeypatch):
    import signal

    init_bot(home, "kbot")
    _session(home, "kbot", range(2000))
    _small_ranges(monkeypatch, 100)
    entries = CaptureReader(home, "kbot").iter_entries(workers=None)
    next(entries)
    os.kill(rangescan.worker_stats()[0].pid, signal.SIGKILL)
    with pytest.raises(CaptureError, match="a decrypting worker process died"):
        list(entries)
    got, skipped, _ = _read(home, "kbot", False, None)
    assert len(got) == 2000 and skipped == (0, 0, 0)
