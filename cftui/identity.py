"""A bot's age identity (`secrets/<bot>/snapshot.key`, in age-keygen's
format): written by `cftui init`, read by snapshots, capture decryption and
the runtimes (which hand the public recipient to the egress proxy).

A leaf module, so that none of those readers imports the `init` command.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cftui import age
from cftui.errors import CftuiError
from cftui.fleet import FleetHome


def age_keygen_text(identity: X25519PrivateKey, now: datetime | None = None) -> str:
    """An identity in the exact file format of `age-keygen`."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"# created: {stamp}\n# public key: {age.recipient_of(identity)}\n"
        f"{age.identity_text(identity)}\n"
    )


def read_identity(path: Path) -> X25519PrivateKey:
    """Load an age-keygen style identity file (comments allowed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CftuiError(f"cannot read identity {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CftuiError(f"{path} holds no valid age X25519 identity") from None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("AGE-SECRET-KEY-"):
            try:
                return age.parse_identity(line)
            except age.AgeError:
                break
    raise CftuiError(f"{path} holds no valid age X25519 identity")


def recipient_of(home: FleetHome, bot: str) -> str:
    """The bot's public age recipient (age1...)."""
    return age.recipient_of(read_identity(home.snapshot_key(bot)))
