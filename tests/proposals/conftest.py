"""A bot with a real approved git repository and a seeded proposals tree,
and helpers that play the agent writing into it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from cftui.proposal_tree import seed

BOT = "prop"


def git(cwd: Path, *args: str) -> str:
    """The test's own git, playing whoever owns `cwd` (never cftui's path)."""
    return subprocess.run(
        ["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def bot(home: FleetHome) -> str:
    init_bot(home, BOT)
    seed.seed(home, BOT)
    return BOT


@pytest.fixture
def tree(home: FleetHome, bot: str) -> Path:
    """The proposals tree, as the agent sees it at /proposals."""
    return home.proposals_dir(bot)


def write(root: Path, rel: str, text: str | bytes, mode: int | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    if mode is not None:
        os.chmod(path, mode)
    return path
