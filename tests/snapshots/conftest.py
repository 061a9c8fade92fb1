"""Fixtures for snapshots, gateway config and updates: a bot with a state
directory full of the kinds of files a gateway leaves, and helpers to compare
trees and to make archives with the stock `age` and `tar` tools."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from cftui.identity import recipient_of

BOT = "alpha"


def require_age() -> None:
    if not shutil.which("age"):
        pytest.fail("the age CLI is required (apt-get install age)")


def tree(root: Path) -> dict[str, tuple]:
    """Everything a byte-exact comparison needs: type, mode, content hash, link."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_size, digest)
    return out


def fill_state(state: Path) -> None:
    """What a gateway's state holds, plus the caches a snapshot leaves out."""
    (state / "agents" / "main" / "sessions").mkdir(parents=True)
    (state / "agents" / "main" / "agent").mkdir(parents=True)
    (state / "credentials").mkdir()
    (state / "workspace" / "memory").mkdir(parents=True)
    (state / "openclaw.json").write_text('{"gateway": {"port": 18789}}\n')
    (state / "agents" / "main" / "sessions" / "s1.jsonl").write_bytes(os.urandom(200_000))
    (state / "agents" / "main" / "agent" / "models.json").write_text("{}")
    (state / "credentials" / "token.json").write_text('{"t": "x"}')
    os.chmod(state / "credentials" / "token.json", 0o600)
    (state / "workspace" / "memory" / "2026-11-24.md").write_text("# today\n")
    (state / "workspace" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(state / "workspace" / "run.sh", 0o755)
    (state / "empty").write_bytes(b"")
    (state / "unicod\u00e9-\u00fc.txt").write_text("utf-8 name")
    (state / ("deep-" * 30)).mkdir()
    (state / ("deep-" * 30) / ("long-name-" * 12)).write_text("long path")
    os.symlink("agents/main", state / "main-agent")
    os.symlink("../openclaw.json", state / "workspace" / "config-link")
    # Caches and temp files (CONTRACTS §5)
    for cache in ("node_modules/pkg", "installed/x", "__pycache__", "logs", "venvy"):
        (state / cache).mkdir(parents=True)
        (state / cache / "junk").write_text("cache")
    (state / "venvy" / "pyvenv.cfg").write_text("home = /usr\n")
    (state / "memory.sqlite-wal").write_text("wal")
    (state / "download.tmp").write_text("tmp")
    (state / "gateway.log").write_text("log")


EXCLUDED = (
    "node_modules",
    "installed",
    "__pycache__",
    "logs",
    "venvy",
    "memory.sqlite-wal",
    "download.tmp",
    "gateway.log",
)


def kept(state_tree: dict[str, tuple]) -> dict[str, tuple]:
    """A tree without what snapshots exclude."""
    return {k: v for k, v in state_tree.items() if k.split("/")[0] not in EXCLUDED}


@pytest.fixture
def bot(home: FleetHome) -> str:
    init_bot(home, BOT)
    fill_state(home.state_dir(BOT))
    return BOT


def age_encrypt(home: FleetHome, bot: str, plaintext: bytes, dest: Path) -> Path:
    """Encrypt with the stock age CLI to the bot's recipient."""
    require_age()
    subprocess.run(
        ["age", "-r", recipient_of(home, bot), "-o", str(dest)], input=plaintext, check=True
    )
    return dest


def add_member(
    tar: tarfile.TarFile,
    name: str,
    *,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    link: str = "",
    mode: int = 0o644,
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


@pytest.fixture
def crafted(home: FleetHome, bot: str) -> Callable[..., str]:
    """Write a hand-made archive, age-encrypted with the CLI, as a snapshot."""

    def make(build: Callable[[tarfile.TarFile], None], label: str = "crafted") -> str:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
            add_member(tar, "state/", kind=tarfile.DIRTYPE, mode=0o700)
            add_member(tar, "state/ok.txt", data=b"fine")
            build(tar)
        name = f"{label}--2020-01-01T00-00-00Z.tar.age"
        age_encrypt(home, bot, buf.getvalue(), home.snapshots_dir(bot) / name)
        return name

    return make
