"""fleet.toml's parse cache (`cftui.toml_cache`): the parse is skipped only
when the file is the one parsed, and every other cache is ignored."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cftui import toml_cache
from cftui.errors import FleetError
from cftui.fleet import FleetHome

REPO = Path(__file__).resolve().parents[2]


def _aged(path: Path, text: str, age_s: float = 60.0) -> None:
    """`text` written to `path`, its mtime `age_s` in the past (past the racy window)."""
    path.write_text(text)
    then = time.time() - age_s
    os.utime(path, (then, then))


def _loads_tomllib(home: Path) -> bool:
    """Whether reading the fleet in a fresh interpreter imports tomllib."""
    code = (
        "import sys; from cftui.fleet import FleetHome; "
        f"FleetHome({str(home)!r}).bots(); print('tomllib' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'proxies'}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip() == "True"


def test_the_second_read_of_an_unchanged_fleet_skips_the_parse(tmp_path: Path) -> None:
    home = FleetHome(tmp_path)
    _aged(home.fleet_toml, '[bots.ada]\nruntime = "docker"\ngateway_port = 18801\n')
    assert _loads_tomllib(tmp_path)  # parsed, and the cache written
    assert stat.S_IMODE(home.fleet_toml_cache.stat().st_mode) == 0o600
    assert not _loads_tomllib(tmp_path)
    assert home.bots()["ada"].gateway_port == 18801


def test_an_edit_of_the_same_size_is_read_at_once(tmp_path: Path) -> None:
    path, cache = tmp_path / "fleet.toml", tmp_path / ".cache.json"
    _aged(path, "port = 18801\n")
    assert toml_cache.load(path, cache) == {"port": 18801}
    assert cache.exists()
    path.write_text("port = 18802\n")  # same size, new stamps
    assert toml_cache.load(path, cache) == {"port": 18802}


def test_a_file_changed_within_the_racy_window_is_not_cached(tmp_path: Path) -> None:
    path, cache = tmp_path / "fleet.toml", tmp_path / ".cache.json"
    path.write_text("port = 1\n")
    assert toml_cache.load(path, cache) == {"port": 1}
    assert not cache.exists()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\xff not json",
        b'{"key": [1, 2',  # torn
        b"[1, 2, 3]",
        b'{"key": "x", "data": {"port": 9}}',
        b'{"key": [1], "data": {"port": 9}}',  # another file's key
    ],
)
def test_a_corrupt_or_foreign_cache_is_ignored_and_written_again(
    tmp_path: Path, garbage: bytes
) -> None:
    path, cache = tmp_path / "fleet.toml", tmp_path / ".cache.json"
    _aged(path, "port = 18801\n")
    cache.write_bytes(garbage)
    assert toml_cache.load(path, cache) == {"port": 18801}
    assert json.loads(cache.read_bytes())["data"] == {"port": 18801}


def test_a_cache_with_the_right_key_but_no_table_is_ignored(tmp_path: Path) -> None:
    path, cache = tmp_path / "fleet.toml", tmp_path / ".cache.json"
    _aged(path, "port = 18801\n")
    toml_cache.load(path, cache)
    entry = json.loads(cache.read_bytes())
    cache.write_text(json.dumps({"key": entry["key"], "data": [1]}))
    assert toml_cache.load(path, cache) == {"port": 18801}


def test_toml_dates_are_parsed_every_time_and_never_cached(tmp_path: Path) -> None:
    path, cache = tmp_path / "fleet.toml", tmp_path / ".cache.json"
    _aged(path, "since = 2026-12-01T10:00:00Z\n")
    first = toml_cache.load(path, cache)
    assert first is not None and first["since"].year == 2026
    assert not cache.exists()


def test_a_cache_that_cannot_be_written_costs_only_the_parse(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    _aged(path, "port = 7\n")
    assert toml_cache.load(path, tmp_path / "no-such-dir" / ".cache.json") == {"port": 7}


def test_no_file_is_none_and_a_bad_one_still_fails_in_one_line(tmp_path: Path) -> None:
    home = FleetHome(tmp_path)
    assert toml_cache.load(home.fleet_toml, home.fleet_toml_cache) is None
    _aged(home.fleet_toml, "[bots.ada]\nruntime = ")
    with pytest.raises(FleetError, match="not valid TOML"):
        home.bots()
    home.fleet_toml.write_bytes(b"name = '\xff'\n")  # not UTF-8
    with pytest.raises(FleetError, match="not valid TOML"):
        home.bots()
