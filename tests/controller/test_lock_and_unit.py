"""One controller per home (the second names the first's pid), what the TUI
reads from the lock, and the systemd user unit `--install-unit` writes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cftui.controller import unit
from cftui.controller.lock import ControllerRunning, ServeLock, running_controller
from cftui.fleet import FleetHome

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'proxies'}"}


def test_a_second_controller_refuses_naming_the_first(fleet: FleetHome) -> None:
    first = ServeLock(fleet, "127.0.0.1:1")
    try:
        info = running_controller(fleet)
        assert info is not None and info.pid == os.getpid() and info.listen == "127.0.0.1:1"
        with pytest.raises(ControllerRunning, match=f"pid {os.getpid()}"):
            ServeLock(fleet, "127.0.0.1:2")
    finally:
        first.release()
    assert running_controller(fleet) is None
    ServeLock(fleet, "x").release()  # free again


def test_no_controller_reads_as_none_and_creates_nothing(home: FleetHome) -> None:
    assert running_controller(home) is None
    assert not home.root.exists()


def test_a_killed_controller_leaves_no_stale_lock(fleet: FleetHome) -> None:
    code = (
        "import sys,time; from cftui.fleet import FleetHome; "
        "from cftui.controller.lock import ServeLock; "
        f"ServeLock(FleetHome({str(fleet.root)!r}), 'x'); print('held', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=_env())
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"held"
        info = running_controller(fleet)
        assert info is not None and info.pid == child.pid
    finally:
        child.kill()
        child.wait()
    assert running_controller(fleet) is None


def test_cftui_serve_runs_logs_and_a_second_one_refuses(fleet: FleetHome) -> None:
    cmd = [sys.executable, "-m", "cftui", "serve", "--home", str(fleet.root)]
    first = subprocess.Popen(
        [*cmd, "--listen", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True, env=_env()
    )
    try:
        assert first.stderr is not None
        head = [first.stderr.readline()]
        while "listening on" not in head[-1] and len(head) < 5:  # the budget hook's note first
            head.append(first.stderr.readline())
        line = head[-1]
        assert "listening on 127.0.0.1:" in line and str(fleet.root) in line
        assert all(x.count("cftui serve: ") == 1 for x in head)  # one line an action
        second = subprocess.run(
            [*cmd, "--listen", "127.0.0.1:0"], capture_output=True, text=True, env=_env()
        )
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            f"cftui: a controller already runs for {fleet.root} (pid {first.pid}): stop it first"
        ]
        assert (fleet.root / "secrets" / "controller.env").stat().st_mode & 0o777 == 0o600
    finally:
        first.send_signal(signal.SIGTERM)
        rest = first.communicate(timeout=20)[1]
    assert first.returncode == 0, rest
    assert "stopping" in rest and "Traceback" not in rest
    deadline = time.monotonic() + 5
    while running_controller(fleet) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running_controller(fleet) is None


def test_serve_refuses_a_bad_listen_address_in_one_line(fleet: FleetHome, cli) -> None:
    r = cli("serve", "--listen", "nowhere")
    assert r.code == 2 and r.err.count("\n") == 1 and "HOST:PORT" in r.err


def test_install_unit_writes_a_unit_that_runs_this_controller(
    fleet: FleetHome, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    r = cli("serve", "--install-unit", "--listen", "127.0.0.1:9999", "--notify", "http://h/x")
    assert r.code == 0, r.err
    [path] = (tmp_path / "config" / "systemd" / "user").iterdir()
    assert path.name == unit.unit_name(fleet) == "cftui-serve.service"  # CLAWFACTORY_HOME's
    text = path.read_text()
    exec_start = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    assert exec_start == (
        f"ExecStart={sys.executable} -m cftui serve --home {fleet.root.resolve()} "
        "--listen 127.0.0.1:9999 --notify http://h/x"
    )
    for line in ("Restart=on-failure", "WantedBy=default.target", "UMask=0077", "Type=simple"):
        assert line in text.splitlines()
    assert f"systemctl --user enable --now {path.name}" in r.out
    if shutil.which("systemd-analyze"):  # system mode: a container has no user manager
        check = subprocess.run(
            ["systemd-analyze", "verify", str(path)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stderr


def test_unit_quotes_a_home_with_spaces_and_percent(tmp_path: Path) -> None:
    home = FleetHome(tmp_path / "my 100% fleet")
    text = unit.unit_text(home, [], python="/usr/bin/python3")
    assert unit.unit_name(home).startswith("cftui-serve-")  # not the default home
    assert f'--home "{(tmp_path / "my 100%% fleet").resolve()}"' in text


def test_default_home_unit_has_the_plain_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLAWFACTORY_HOME", str(tmp_path / "h"))
    assert unit.unit_name(FleetHome()) == "cftui-serve.service"
