"""The last install's output kept where the operator reads it
(`logs/<bot>/installer.log`, 0600 in 0700), bounded, and shown by
`cftui logs BOT installer` with its times and control characters escaped."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime

from cftui.botinit import init_bot
from cftui.deps import install_log
from cftui.fleet import FleetHome

NPM = [
    "2026-12-02T10:00:01.123456789Z npm WARN deprecated left-pad@1.3.0",
    "2026-12-02T10:00:02.000000000Z added 1 package in 1s",
]


def test_the_output_is_kept_private_with_its_times(home: FleetHome) -> None:
    init_bot(home, "alpha")
    path = install_log.keep(home, "alpha", "npm install of c0ffee: exit 0", NPM)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert path == home.root / "logs" / "alpha" / "installer.log"
    lines = install_log.read(home, "alpha", None)
    assert [t for _, t in lines] == [
        "cftui: npm install of c0ffee: exit 0",
        "npm WARN deprecated left-pad@1.3.0",
        "added 1 package in 1s",
    ]
    assert lines[1][0] == datetime(2026, 12, 2, 10, 0, 1, 123456, tzinfo=UTC)
    assert [t for _, t in install_log.read(home, "alpha", 1)] == ["added 1 package in 1s"]
    assert install_log.read(home, "alpha", 0) == []


def test_a_new_install_replaces_the_last_and_a_huge_one_keeps_its_end(home: FleetHome) -> None:
    init_bot(home, "alpha")
    install_log.keep(home, "alpha", "first", NPM)
    before = install_log.version(home, "alpha")
    flood = [f"npm http fetch GET 200 pkg-{i} {'x' * 100}" for i in range(20_000)]
    install_log.keep(home, "alpha", "second", [*flood, "the end"])
    assert install_log.version(home, "alpha") != before
    assert os.path.getsize(home.installer_log("alpha")) <= install_log.MAX_BYTES
    lines = install_log.read(home, "alpha", None)
    assert lines[-1][1] == "the end"
    assert all(t.startswith("npm http fetch") for _, t in lines[:-1])  # no torn first line


def test_no_install_yet_reads_nothing(home: FleetHome) -> None:
    init_bot(home, "alpha")
    assert install_log.read(home, "alpha", 10) == []
    assert install_log.version(home, "alpha") is None


def test_cftui_logs_installer_prints_it_escaped(home: FleetHome, cli) -> None:
    init_bot(home, "alpha")
    none = cli("logs", "alpha", "installer")
    assert none.code == 0 and "no dependency install has run for alpha" in none.err
    install_log.keep(home, "alpha", "npm ci of c0ffee: exit 1", ["npm ERR! \x1b[31m404\x1b[0m"])
    out = cli("logs", "alpha", "installer", "--tail", "1")
    assert out.code == 0, out.err
    assert out.out.endswith("npm ERR! \\x1b[31m404\\x1b[0m\n"), out.out
    assert out.out.count("\n") == 1
    assert "\x1b" not in out.out
    bad = cli("logs", "alpha", "nosuch")
    assert bad.code == 2 and "installer" in bad.err
