"""`cftui audit` (issue #23): events.jsonl read back, torn lines skipped and
counted, details that quote others escaped, `--since`, `--json`, `--follow`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from cftui.audit.events import record_event
from cftui.cli.events_cmds import since_time
from cftui.errors import UsageError
from cftui.fleet import FleetHome


def _lines(text: str) -> list[str]:
    return text.strip().splitlines()


def test_audit_prints_the_events_and_counts_torn_lines(home: FleetHome, cli) -> None:
    assert cli("init", "bot1").code == 0
    assert cli("init", "bot2").code == 0
    with home.events_log.open("ab") as f:
        f.write(b'{"ts": "2026-01-01T00:00:00.000Z", "act\n')  # torn by a crash
        f.write(b"[1, 2]\n")  # JSON, but no event
    record_event(home, "allow", "bot1", host="evil\x1b[2J.example\x07")
    r = cli("audit")
    assert r.code == 0
    lines = _lines(r.out)
    assert [line.split("  ")[1] for line in lines] == ["init", "init", "allow"]
    assert "\x1b" not in r.out and "\x07" not in r.out and "\\x1b[2J" in lines[-1]
    assert r.err.strip() == f"cftui: skipped 2 malformed line(s) of {home.events_log}"
    r = cli("audit", "bot2", "--json")
    (event,) = [json.loads(line) for line in _lines(r.out)]
    assert (event["action"], event["bot"]) == ("init", "bot2")


def test_audit_since(home: FleetHome, cli) -> None:
    assert cli("init", "bot1").code == 0
    with home.events_log.open("a") as f:
        f.write(json.dumps({"ts": "2020-01-01T00:00:00.000Z", "action": "old", "bot": None}))
        f.write("\n")
    assert [line.split("  ")[1] for line in _lines(cli("audit").out)] == ["init", "old"]
    assert [line.split("  ")[1] for line in _lines(cli("audit", "--since", "1h").out)] == ["init"]
    r = cli("audit", "--since", "2019-12-31", "--json")
    assert [json.loads(line)["action"] for line in _lines(r.out)] == ["init", "old"]
    r = cli("audit", "--since", "yesterday")
    assert r.code == 2 and "bad --since 'yesterday'" in r.err


def test_since_time() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert since_time("90s", now) == now - timedelta(seconds=90)
    assert since_time("2h", now) == now - timedelta(hours=2)
    assert since_time("3d", now) == now - timedelta(days=3)
    assert since_time("2026-12-01T10:00", now) == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert since_time(None) is None
    for bad in ("", "10", "-1h", "1w", "now"):
        with pytest.raises(UsageError):
            since_time(bad, now)


def test_audit_follow_prints_new_events(home: FleetHome) -> None:
    record_event(home, "first", None)
    env = {**os.environ, "CLAWFACTORY_HOME": str(home.root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cftui", "audit", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert " first " in proc.stdout.readline()
        time.sleep(0.2)
        record_event(home, "second", None)
        assert " second " in proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
