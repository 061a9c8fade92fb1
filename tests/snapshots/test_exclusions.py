"""One list of what a snapshot leaves out, in both its forms: the Lima
runtime's rsync pull of state/ (real rsync) brings exactly what the
snapshot's walk keeps, but for a virtualenv rsync cannot recognise."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cftui.snapshot_exclusions import EXCLUDED_DIRS, is_excluded, rsync_filter_args
from cftui.snapshots.create import _walk


def _state(root: Path) -> None:
    for d in EXCLUDED_DIRS:
        (root / "agents" / d).mkdir(parents=True)
        (root / "agents" / d / "cached.js").write_text("x")
        (root / "top" / d).mkdir(parents=True, exist_ok=True)
    for name in ("a.sqlite-wal", "a.sqlite-shm", "b.tmp", "c.temp", ".d.swp", "e.log"):
        (root / "agents" / name).write_text("x")
    (root / "agents" / "f.partial").write_text("x")
    (root / "notes.md~").write_text("x")
    (root / ".#notes.md").write_text("x")
    (root / "logs.md").write_text("kept: a file named like an excluded directory")
    (root / "run.log").mkdir()  # a directory named like a log file: kept
    (root / "run.log" / "entry.md").write_text("kept")
    (root / ".#dir").mkdir()
    (root / ".#dir" / "kept.md").write_text("kept")
    (root / "memory").mkdir()
    (root / "memory" / "2026-01-01.md").write_text("kept")
    (root / "memory" / "sqlite.db").write_text("kept")


def test_rsync_pulls_what_the_snapshot_keeps(tmp_path: Path) -> None:
    if not shutil.which("rsync"):
        pytest.fail("rsync is required (make test installs it)")
    src, dest = tmp_path / "state", tmp_path / "pulled"
    _state(src)
    subprocess.run(["rsync", "-a", *rsync_filter_args(), f"{src}/", f"{dest}/"], check=True)
    pulled = {str(p.relative_to(dest)) for p in dest.rglob("*")}
    kept = {rel for rel, _entry in _walk(str(src))}
    assert pulled == kept
    assert {"run.log/entry.md", ".#dir/kept.md", "logs.md", "memory/sqlite.db"} <= kept
    assert not any(part in EXCLUDED_DIRS for rel in pulled for part in rel.split("/"))


def test_a_virtualenv_is_left_out_by_the_walk_alone(tmp_path: Path) -> None:
    (tmp_path / "env" / "lib").mkdir(parents=True)
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    assert not is_excluded("env", is_dir=True)
    assert [rel for rel, _entry in _walk(str(tmp_path))] == []
