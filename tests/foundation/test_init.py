"""`cftui init`: the fleet home's layout, its modes, and every refusal."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from pyrage import decrypt, encrypt, x25519

from cftui import age
from cftui.botinit import read_identity, recipient_of
from cftui.fleet import FleetHome


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def snapshot_tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under root with its mode and (for files) content."""
    out = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = (
            mode(p),
            p.read_bytes() if p.is_file() and not p.is_symlink() else None,
        )
    return out


def test_init_creates_the_layout_of_the_contract(home: FleetHome, cli) -> None:
    result = cli("init", "bot1")
    assert result.code == 0, result.err
    for d in (
        "bot_repos/bot1/code/workspace",
        "bot_repos/bot1/state",
        "secrets/bot1",
        "snapshots/bot1",
        "audit/bot1",
    ):
        assert (home.root / d).is_dir(), d
    ws = home.workspace_dir("bot1")
    for f in ("SOUL.md", "TOOLS.md"):
        assert (ws / f).is_file()
    assert (ws / "skills").is_dir() and (ws / "memory").is_dir()
    assert (home.code_dir("bot1") / "Dockerfile").read_text().count("openclaw") > 0
    assert home.bot("bot1").gateway == "openclaw"


def test_init_secrets_are_private_from_creation(home: FleetHome, cli) -> None:
    assert cli("init", "bot1").code == 0
    secrets = home.secrets_dir("bot1")
    assert mode(secrets) == 0o700
    assert mode(secrets.parent) == 0o700
    for name in ("gateway.env", "providers.env", "snapshot.key"):
        assert mode(secrets / name) == 0o600, name
    assert mode(home.root) == 0o700
    assert mode(home.fleet_toml) == 0o600


def test_init_secrets_never_world_readable_even_with_a_loose_umask(home: FleetHome, cli) -> None:
    old = os.umask(0)
    try:
        assert cli("init", "bot1").code == 0
    finally:
        os.umask(old)
    for name in ("gateway.env", "providers.env", "snapshot.key"):
        assert mode(home.secrets_dir("bot1") / name) == 0o600


def test_snapshot_key_is_in_age_keygen_format_and_works(home: FleetHome, cli) -> None:
    assert cli("init", "bot1").code == 0
    lines = home.snapshot_key("bot1").read_text().splitlines()
    assert lines[0].startswith("# created: ")
    assert lines[1].startswith("# public key: age1")
    assert lines[2].startswith("AGE-SECRET-KEY-1")
    ident = read_identity(home.snapshot_key("bot1"))
    recipient = recipient_of(home, "bot1")
    assert recipient == lines[1].removeprefix("# public key: ")
    assert recipient == age.recipient_of(ident)
    # pyrage, an implementation independent of ours, reads the key file's identity
    pyrage_identity = x25519.Identity.from_str(lines[2])
    assert str(pyrage_identity.to_public()) == recipient
    blob = encrypt(b"state", [x25519.Recipient.from_str(recipient)])
    assert decrypt(blob, [pyrage_identity]) == b"state"
    assert age.decrypt_bytes(blob, ident) == b"state"


def test_snapshot_key_is_readable_by_the_age_cli(home: FleetHome, cli, tmp_path: Path) -> None:
    if subprocess.run(["which", "age"], capture_output=True).returncode != 0:
        pytest.fail("the age CLI is required (make test installs it)")
    assert cli("init", "bot1").code == 0
    recipient = recipient_of(home, "bot1")
    plain = tmp_path / "p"
    plain.write_bytes(b"hello")
    enc = tmp_path / "p.age"
    subprocess.run(["age", "-r", recipient, "-o", str(enc), str(plain)], check=True)
    out = subprocess.run(
        ["age", "-d", "-i", str(home.snapshot_key("bot1")), str(enc)],
        check=True,
        capture_output=True,
    )
    assert out.stdout == b"hello"


def test_tokens_are_random_per_bot_and_provider_keys_stay_out_of_gateway_env(
    home: FleetHome, cli
) -> None:
    assert cli("init", "bot1").code == 0
    assert cli("init", "bot2").code == 0
    g1 = home.gateway_env("bot1").read_text()
    g2 = home.gateway_env("bot2").read_text()
    assert "CF_PROXY_TOKEN=cfp_" in g1 and "OPENCLAW_GATEWAY_TOKEN=cfg_" in g1
    assert g1 != g2
    assert "API_KEY" not in g1
    assert "ANTHROPIC_API_KEY=" in home.providers_env("bot1").read_text()


def test_init_assigns_distinct_gateway_ports(home: FleetHome, cli) -> None:
    for b in ("a1", "a2", "a3"):
        assert cli("init", b).code == 0
    ports = [b.gateway_port for b in home.bots().values()]
    assert len(set(ports)) == 3


def test_code_is_a_git_repository_with_a_commit(home: FleetHome, cli) -> None:
    assert cli("init", "bot1").code == 0
    out = subprocess.run(
        ["git", "-C", str(home.code_dir("bot1")), "log", "--oneline"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip()


def test_init_with_local_code_path_and_git_url(home: FleetHome, cli, tmp_path: Path) -> None:
    src = tmp_path / "agent"
    src.mkdir()
    (src / "Dockerfile").write_text("FROM scratch\n")
    (src / "main.py").write_text("print('hi')\n")
    assert cli("init", "plain", "--code", str(src)).code == 0
    assert (home.code_dir("plain") / "main.py").is_file()
    assert home.bot("plain").gateway == "generic"
    assert (home.workspace_dir("plain") / "SOUL.md").is_file()

    subprocess.run(["git", "init", "-q", str(src)], check=True)
    subprocess.run(["git", "-C", str(src), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
        check=True,
    )
    assert cli("init", "cloned", "--code", f"file://{src}").code == 0
    assert (home.code_dir("cloned") / "main.py").is_file()


@pytest.mark.parametrize("name", ["Bot", "1bot", "bot_1", "-x", "", "a" * 32, "../etc", "bot 1"])
def test_init_refuses_a_bad_name_before_touching_anything(home: FleetHome, cli, name: str) -> None:
    result = cli("init", "--", name)
    assert result.code == 2
    assert result.err.count("\n") == 1 and "bad bot name" in result.err
    assert not home.root.exists()


def test_init_refuses_an_existing_bot_and_keeps_its_key(home: FleetHome, cli) -> None:
    assert cli("init", "bot1").code == 0
    before = snapshot_tree(home.root)
    result = cli("init", "bot1")
    assert result.code == 2
    assert "already exists" in result.err and result.err.count("\n") == 1
    after = snapshot_tree(home.root)
    assert before == after


def test_init_refuses_leftover_directories_of_an_unlisted_bot(home: FleetHome, cli) -> None:
    assert cli("init", "bot1").code == 0
    leftover = home.secrets_dir("ghost")
    leftover.mkdir(mode=0o700)
    (leftover / "snapshot.key").write_text("keep me")
    result = cli("init", "ghost")
    assert result.code == 2
    assert (leftover / "snapshot.key").read_text() == "keep me"


def test_init_refuses_an_unwritable_home(tmp_path: Path, cli, monkeypatch) -> None:
    if os.geteuid() == 0:
        # root ignores permission bits; a path under a regular file is
        # unwritable for everyone.
        blocker = tmp_path / "file"
        blocker.write_text("x")
        target = blocker / "fleet"
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        target = ro / "fleet"
    result = cli("--home", str(target), "init", "bot1")
    assert result.code != 0
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert not target.exists()


def test_init_refuses_missing_code_path(home: FleetHome, cli, tmp_path: Path) -> None:
    result = cli("init", "bot1", "--code", str(tmp_path / "nope"))
    assert result.code == 2
    assert not home.root.exists()


def test_failed_clone_rolls_back_everything(home: FleetHome, cli, tmp_path: Path) -> None:
    assert cli("init", "keep").code == 0
    before = snapshot_tree(home.root)
    result = cli("init", "broken", "--code", f"file://{tmp_path}/no-such-repo")
    assert result.code == 1
    assert "git clone failed" in result.err
    after = snapshot_tree(home.root)
    assert before == after


def test_gateway_kind_comes_from_instructions_not_comments(tmp_path: Path) -> None:
    from cftui.botinit import detect_gateway_kind

    (tmp_path / "Dockerfile").write_text("# a stand-in for an OpenClaw gateway\nFROM python\n")
    assert detect_gateway_kind(tmp_path) == "generic"
    (tmp_path / "Dockerfile").write_text('RUN npm install -g "openclaw@latest"\n')
    assert detect_gateway_kind(tmp_path) == "openclaw"
