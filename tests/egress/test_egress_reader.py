"""The decrypting reader on logs written by the proxy's own session code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cfproxies.egress.session import CaptureSession

from cftui.audit.capture import CaptureReader
from cftui.botinit import init_bot
from cftui.errors import CaptureError
from cftui.identity import recipient_of


def _write_flows(home, bot: str, n: int, start: int = 0) -> CaptureSession:
    s = CaptureSession(bot, home.capture_log(bot), home.capture_keys(bot), recipient_of(home, bot))
    for i in range(start, start + n):
        s.write(
            {"v": 1, "id": f"f{i}", "method": "GET", "url": f"https://a.example/{i}", "status": 200}
        )
    s.close()
    return s


@pytest.fixture
def rbot(home) -> str:
    init_bot(home, "rbot")
    return "rbot"


def test_parallel_scan_keeps_the_order(home, rbot, monkeypatch):
    import cftui.audit.capture as capture

    monkeypatch.setattr(capture, "SCAN_CHUNK", 4096)
    monkeypatch.setattr(capture, "SCAN_MIN", 0)
    _write_flows(home, rbot, 300)
    reader = CaptureReader(home, rbot)
    ids = [e.record["id"] for e in reader.iter_entries(newest_first=False, workers=2)]
    assert ids == [f"f{i}" for i in range(300)]
    ids = [e.record["id"] for e in reader.iter_entries(newest_first=True, workers=3)]
    assert ids == [f"f{i}" for i in range(299, -1, -1)]


def test_reader_streams_newest_first_and_oldest_first(home, rbot):
    _write_flows(home, rbot, 5)
    _write_flows(home, rbot, 3, start=5)  # a second capture session, its own key
    reader = CaptureReader(home, rbot)
    assert [e.record["id"] for e in reader.iter_entries()] == [f"f{i}" for i in range(7, -1, -1)]
    assert [e.record["id"] for e in reader.iter_entries(newest_first=False)] == [
        f"f{i}" for i in range(8)
    ]
    assert [e.record["id"] for e in reader.page(2)] == ["f7", "f6"]
    assert reader.skipped.total == 0


def test_reader_is_lazy_opening_only_the_keys_and_lines_it_needs(home, rbot):
    _write_flows(home, rbot, 4)
    _write_flows(home, rbot, 4, start=4)
    reader = CaptureReader(home, rbot)
    page = reader.page(2)
    assert len(reader.keys._open) == 1  # the older session's key was never opened
    assert all(e._record is None for e in page)  # not even parsed until looked at
    assert page[0].record["id"] == "f7"
    assert reader.line_count() == 8
    assert reader.entry(0).record["id"] == "f7"
    assert reader.entry(7).record["id"] == "f0"
    assert reader.entry(0, newest_first=False).record["id"] == "f0"


@pytest.mark.parametrize("workers", [1, 2])
def test_tampered_and_torn_lines_are_skipped_and_counted(home, rbot, workers):
    _write_flows(home, rbot, 6)
    path = home.capture_log(rbot)
    lines = path.read_bytes().splitlines(keepends=True)
    tampered = json.loads(lines[1])
    t = tampered["t"]
    tampered["t"] = t[:60] + ("A" if t[60] != "A" else "B") + t[61:]
    lines[1] = json.dumps(tampered, separators=(",", ":")).encode() + b"\n"
    lines[3] = b'{"k":"nope","t":"gAAAA"}\n'  # a key capture.keys never held
    lines.insert(4, b"not json at all\n")
    path.write_bytes(b"".join(lines) + lines[5][:40])  # and a torn tail
    for newest_first in (True, False):
        reader = CaptureReader(home, rbot)
        ids = [e.record["id"] for e in reader.iter_entries(newest_first, workers=workers)]
        assert ids == (["f5", "f4", "f2", "f0"] if newest_first else ["f0", "f2", "f4", "f5"])
        assert (reader.skipped.tampered, reader.skipped.torn, reader.skipped.unknown_key) == (
            1,
            2,
            1,
        )


def test_wrong_identity_is_a_clear_error(home, rbot, tmp_path):
    init_bot(home, "other")
    _write_flows(home, rbot, 1)
    reader = CaptureReader(home, rbot, identity_path=home.snapshot_key("other"))
    with pytest.raises(
        CaptureError, match=r"cannot open capture key .* use the bot's own identity"
    ):
        list(reader.iter_entries())


def test_missing_identity_or_log_is_handled(home, rbot, tmp_path):
    with pytest.raises(CaptureError, match="cannot read identity"):
        CaptureReader(home, rbot, identity_path=tmp_path / "absent.key")
    assert CaptureReader(home, rbot).page(10) == []


def test_nothing_decrypted_is_written_to_disk(home, rbot, tmp_path, cli):
    s = CaptureSession(
        rbot, home.capture_log(rbot), home.capture_keys(rbot), recipient_of(home, rbot)
    )
    s.write({"v": 1, "id": "x", "method": "GET", "url": "https://a.example/PLAINTEXT-MARKER"})
    s.close()
    before = {p: p.stat().st_mtime_ns for p in home.root.rglob("*") if p.is_file()}
    r = cli("decrypt", rbot, "--json")
    assert "PLAINTEXT-MARKER" in r.out
    for dirpath, _, names in os.walk(home.root):
        for n in names:
            assert b"PLAINTEXT-MARKER" not in (Path(dirpath) / n).read_bytes()
    after = {p: p.stat().st_mtime_ns for p in home.root.rglob("*") if p.is_file()}
    assert set(after) == set(before)


def test_decrypt_lists_newest_last_like_traffic(home, rbot, cli):
    """`decrypt` listed newest first while `traffic` and the Capture tab list
    newest last (issue #22): now newest last, and `-n N` the newest N."""
    _write_flows(home, rbot, 5)
    _write_flows(home, rbot, 3, start=5)

    def ids(*argv: str) -> list[str]:
        r = cli("decrypt", rbot, "--json", *argv)
        assert r.code == 0, r.err
        return [json.loads(x)["id"] for x in r.out.splitlines()]

    assert ids() == [f"f{i}" for i in range(8)]
    assert ids("-n", "3") == ["f5", "f6", "f7"]
    assert ids("--newest-first") == [f"f{i}" for i in range(7, -1, -1)]
    assert ids("--newest-first", "-n", "2") == ["f7", "f6"]
    assert ids("--oldest-first", "-n", "2") == ["f6", "f7"]  # the old flag, still accepted
    assert ids("-n", "0") == []
    text = cli("decrypt", rbot).out.splitlines()
    assert "a.example/0" in text[0]
    assert "a.example/7" in text[-1]
    r = cli("decrypt", rbot, "--oldest-first", "--newest-first")
    assert r.code == 2 and "choose one" in r.err and "Traceback" not in r.err
    r = cli("decrypt", "--help")
    assert "newest last" in " ".join(r.out.split())
