"""`cftui init BOT`: a new bot's directories, secrets, key and fleet entry.

Everything that can refuse is checked before the first file is touched (the
name, an existing bot, a home we cannot write, a `--code` that is not there),
and if creation fails half-way, what this call created is removed again, so
an existing bot or key is never overwritten and a failed init leaves nothing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cftui import age, hostgit
from cftui.audit.events import record_event
from cftui.errors import CftuiError, FleetError, UsageError
from cftui.fleet import RUNTIMES, BotConfig, FleetHome, validate_bot_name
from cftui.hosts.config import LOCAL
from cftui.identity import age_keygen_text
from cftui.securefs import make_private_dirs, write_new_private_file

GIT_URL_RE = re.compile(r"^(https?://|ssh://|git://|git@[^:]+:|file://)")
PROVIDER_KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY")


@dataclass(frozen=True)
class InitResult:
    bot: BotConfig
    recipient: str


def _check_home_writable(root: Path) -> None:
    p = root
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    if not p.is_dir():
        raise FleetError(f"cannot use {root} as the fleet home: {p} is not a directory")
    if not os.access(p, os.W_OK | os.X_OK):
        raise FleetError(
            f"cannot write to {p}: choose another home with --home or CLAWFACTORY_HOME"
        )


def _is_git_url(code: str) -> bool:
    return bool(GIT_URL_RE.match(code))


def _git(args: list[str], cwd: Path | None = None, *, repo: Path | None = None) -> None:
    """The one host git (`cftui.hostgit`): in `repo`, or outside any repository."""
    hostgit.git(repo, *args, cwd=cwd, timeout=600)


def _commit_all(repo: Path, message: str) -> None:
    _git(["init", "-q", "-b", "main"], cwd=repo)
    _git(["add", "-A"], repo=repo)
    _git(
        [
            "-c",
            "user.name=cftui",
            "-c",
            "user.email=cftui@localhost",
            "commit",
            "-q",
            "-m",
            message,
        ],
        repo=repo,
    )


def _copy_template(name: str, dest: Path) -> None:
    src = resources.files("cftui") / "templates" / name
    with resources.as_file(src) as path:
        shutil.copytree(path, dest, dirs_exist_ok=True)


def detect_gateway_kind(code: Path) -> str:
    """`openclaw` for OpenClaw sources or our OpenClaw Dockerfile, else `generic`."""
    if (code / "openclaw.mjs").exists():
        return "openclaw"
    pkg = code / "package.json"
    if pkg.is_file():
        try:
            if json.loads(pkg.read_text(encoding="utf-8")).get("name") == "openclaw":
                return "openclaw"
        except (ValueError, OSError, AttributeError):
            pass
    dockerfile = code / "Dockerfile"
    if dockerfile.is_file():
        # Only instructions count: a comment that mentions OpenClaw (the demo
        # agent's does) does not make a gateway OpenClaw.
        for line in dockerfile.read_text(errors="replace").lower().splitlines():
            line = line.strip()
            if line.startswith("#"):
                continue
            if "openclaw@" in line or "openclaw/openclaw" in line or '"openclaw"' in line:
                return "openclaw"
    return "generic"


def _populate_code(code_dir: Path, code: str | None) -> None:
    if code is None:
        _copy_template("openclaw", code_dir)
        _commit_all(code_dir, "Workspace skeleton and OpenClaw gateway Dockerfile")
        return
    if _is_git_url(code):
        _git(["clone", "-q", code, str(code_dir)])
        return
    src = Path(code).expanduser().resolve()
    if (src / ".git").exists():
        _git(["clone", "-q", str(src), str(code_dir)])
    else:
        shutil.copytree(src, code_dir, symlinks=True, dirs_exist_ok=True)
        _commit_all(code_dir, f"Import gateway source from {src.name}")
    if not (code_dir / "Dockerfile").is_file():
        raise CftuiError(f"{code} has no Dockerfile: the gateway is built from code/Dockerfile")


def _ensure_workspace(workspace: Path) -> None:
    """A gateway without a workspace still gets the skeleton files."""
    if workspace.exists():
        return
    src = resources.files("cftui") / "templates" / "openclaw" / "workspace"
    with resources.as_file(src) as path:
        shutil.copytree(path, workspace)


def init_bot(
    home: FleetHome,
    name: str,
    *,
    runtime: str = "docker",
    code: str | None = None,
    upstreams: dict[str, str] | None = None,
    gateway: str | None = None,
    host: str = LOCAL,
) -> InitResult:
    """Create a bot. Refuses before touching anything; rolls back on failure."""
    validate_bot_name(name)
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}: use {' or '.join(RUNTIMES)}")
    if host != LOCAL:
        home.host(host)  # a host fleet.toml names, or one line saying which it does
        if runtime != "docker":
            raise UsageError(f"--host {host}: only a docker bot can run on another host")
    _check_home_writable(home.root)
    if home.exists() and name in home.bots():
        raise UsageError(f"bot {name!r} already exists: its key and secrets are left as they are")
    for existing in (home.secrets_dir(name), home.bot_repo(name)):
        if existing.exists():
            raise UsageError(
                f"{existing} already exists: refusing to overwrite another bot's files"
            )
    if code is not None and not _is_git_url(code):
        src = Path(code).expanduser()
        if not src.is_dir():
            raise UsageError(f"--code {code}: no such directory (give a path or a git URL)")

    created: list[Path] = []
    try:
        created += make_private_dirs(home.root)
        for d in (
            home.bot_repo(name),
            home.state_dir(name),
            home.secrets_dir(name),
            home.snapshots_dir(name),
            home.audit_dir(name),
        ):
            created += make_private_dirs(d)
        code_dir = home.code_dir(name)
        if code is not None and _is_git_url(code):
            created.append(code_dir)  # git clone creates it
        else:
            created += make_private_dirs(code_dir)
        _populate_code(code_dir, code)
        _ensure_workspace(home.workspace_dir(name))

        identity = age.generate_identity()
        proxy_token = "cfp_" + secrets.token_urlsafe(32)
        gateway_token = "cfg_" + secrets.token_urlsafe(32)
        write_new_private_file(home.snapshot_key(name), age_keygen_text(identity))
        write_new_private_file(
            home.gateway_env(name),
            "# What the gateway may see. No provider keys: the LLM proxy holds those.\n"
            f"OPENCLAW_GATEWAY_TOKEN={gateway_token}\n"
            f"CF_PROXY_TOKEN={proxy_token}\n",
        )
        write_new_private_file(
            home.providers_env(name),
            "# Provider API keys, read by the LLM proxy only; the gateway never sees them.\n"
            + "".join(f"{k}=\n" for k in PROVIDER_KEYS),
        )
        kind = gateway or detect_gateway_kind(code_dir)
        config = BotConfig(
            name=name,
            runtime=runtime,  # type: ignore[arg-type]  # checked against RUNTIMES
            gateway=kind,  # type: ignore[arg-type]  # checked against GATEWAY_KINDS
            gateway_port=home.next_gateway_port(),
            upstreams=dict(upstreams or {}),
            host=host,
        )
        home.add_bot(config)
    except BaseException:
        for path in reversed(created):
            shutil.rmtree(path, ignore_errors=True)
        raise
    where = {"host": host} if host != LOCAL else {}
    record_event(home, "init", name, runtime=runtime, gateway=kind, **where)
    return InitResult(config, age.recipient_of(identity))
