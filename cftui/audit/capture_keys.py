"""The capture's session keys: `capture.keys` holds one line a session,
its Fernet key age-encrypted to the bot's recipient. A key is opened only
when a line that needs it is read; an identity that is not the bot's is an
error that says which one to use, and a damaged keys line only leaves its
flows unreadable (counted by the reader as with an unknown key)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cftui import age
from cftui.errors import CaptureError


class Keyring:
    """The session keys of `capture.keys`, each opened only when first needed."""

    def __init__(self, keys_path: Path, identity: X25519PrivateKey, identity_path: Path) -> None:
        self.path = keys_path
        self.identity = identity
        self.identity_path = identity_path
        self.public = age.recipient_of(identity)
        self._sealed: dict[str, dict[str, Any]] | None = None
        self._open: dict[str, Fernet] = {}
        self._raw: dict[str, bytes] = {}

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._sealed is None:
            sealed: dict[str, dict[str, Any]] = {}
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                raw = b""
            except OSError as exc:
                raise CaptureError(f"cannot read {self.path}: {exc.strerror}") from None
            for line in raw.splitlines():
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("k"), str):
                    sealed[entry["k"]] = entry
            self._sealed = sealed
        return self._sealed

    def get(self, key_id: str) -> Fernet | None:
        """The key's Fernet, None if `capture.keys` does not hold it."""
        f = self._open.get(key_id)
        if f is not None:
            return f
        entry = self._load().get(key_id)
        if entry is None:
            self._sealed = None  # a session started since we last looked?
            entry = self._load().get(key_id)
            if entry is None:
                return None
        recipient = entry.get("recipient")
        wrong = CaptureError(
            f"{self.identity_path} cannot open capture key {key_id}: it was sealed to "
            f"{recipient or 'another recipient'}, this identity is {self.public}; "
            "use the bot's own identity (--identity FILE)"
        )
        if isinstance(recipient, str) and recipient != self.public:
            raise wrong
        try:
            key = age.decrypt_bytes(base64.b64decode(entry.get("age", "")), self.identity)
            f = Fernet(key)
        except age.WrongKeyError:
            raise wrong from None
        except age.AgeError:
            return None  # a damaged keys line: its flows count as unknown
        except ValueError:
            return None  # a damaged keys line: its flows count as unknown
        self._open[key_id] = f
        self._raw[key_id] = key
        return f

    def opened(self) -> dict[bytes, bytes]:
        """The keys opened so far, raw, by key id: what a scan's workers are given."""
        return {k.encode("ascii", "replace"): v for k, v in self._raw.items()}
