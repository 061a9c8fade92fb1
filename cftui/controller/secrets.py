"""The controller's secrets (CONTRACTS §11): `secrets/controller.env`
(`CF_CONTROLLER_TOKEN`, the remote-kill token; `CF_NOTIFY_SECRET`, which
signs outgoing events), generated at 0600 on first start when absent, and
each bot's `GITHUB_WEBHOOK_SECRET` in `secrets/<bot>/controller.env`.

Values never leave this module except into an HMAC or a compare; nothing
here logs or formats one.
"""

from __future__ import annotations

import os
import secrets as token_source
from dataclasses import dataclass, field
from pathlib import Path

from cfproxies.envfile import parse_env_text

from cftui.errors import FleetError
from cftui.fleet import FleetHome
from cftui.securefs import atomic_write_private, make_private_dirs

TOKEN_KEY = "CF_CONTROLLER_TOKEN"
NOTIFY_KEY = "CF_NOTIFY_SECRET"
GITHUB_KEY = "GITHUB_WEBHOOK_SECRET"
_MIN_SECRET = 16  # shorter than this is refused: a guessable token is no token
_MAX_ENV_BYTES = 64 << 10


def controller_env(home: FleetHome) -> Path:
    return home.root / "secrets" / "controller.env"


def bot_controller_env(home: FleetHome, bot: str) -> Path:
    return home.secrets_dir(bot) / "controller.env"


@dataclass(frozen=True)
class ControllerSecrets:
    token: bytes = field(repr=False)
    notify: bytes = field(repr=False)


def _read_env(path: Path) -> dict[str, str] | None:
    """KEY=VALUE lines of a private file; None when absent."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FleetError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        raw = f.read(_MAX_ENV_BYTES + 1)
    if len(raw) > _MAX_ENV_BYTES:
        raise FleetError(f"{path} is larger than {_MAX_ENV_BYTES} bytes")
    return parse_env_text(raw.decode("utf-8", "replace"))


def load_or_create(home: FleetHome) -> ControllerSecrets:
    """Read `secrets/controller.env`, adding whichever value is missing
    (a fresh 256-bit random token each); the file stays 0600."""
    path = controller_env(home)
    make_private_dirs(path.parent)
    values = _read_env(path) or {}
    missing = [k for k in (TOKEN_KEY, NOTIFY_KEY) if not values.get(k)]
    for key in missing:
        values[key] = token_source.token_urlsafe(32)
    if missing:
        lines = [f"{k}={v}" for k, v in values.items()]
        atomic_write_private(path, "\n".join(lines) + "\n")
    for key in (TOKEN_KEY, NOTIFY_KEY):
        if len(values[key]) < _MIN_SECRET:
            raise FleetError(f"{path}: {key} is shorter than {_MIN_SECRET} characters")
    return ControllerSecrets(values[TOKEN_KEY].encode(), values[NOTIFY_KEY].encode())


def github_secret(home: FleetHome, bot: str) -> bytes | None:
    """The bot's webhook secret, or None when it has none (every delivery
    for it is then refused)."""
    values = _read_env(bot_controller_env(home, bot)) or {}
    value = values.get(GITHUB_KEY, "")
    return value.encode() if value else None
