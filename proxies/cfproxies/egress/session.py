"""A capture session: a fresh Fernet key, known in plaintext only here.

When capture turns on, a new key is generated, age-encrypted to the bot's
recipient and appended to `capture.keys`; from then on every captured flow is
one `{"k": key id, "t": token}` line of `traffic.enc.jsonl`. When capture
turns off the session (and with it the key) is dropped from memory.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pyrage import encrypt as age_encrypt
from pyrage import x25519

from cfproxies.jsonl import append_bytes, append_line, open_append


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_key_id() -> str:
    """Sortable and unique: `20261124T063500Z-3f9a1c2b`."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)


class CaptureSession:
    """One key, one open append descriptor; `close()` forgets both."""

    def __init__(self, bot: str, log_path: Path, keys_path: Path, recipient: str) -> None:
        self.bot = bot
        self.key_id = new_key_id()
        key = Fernet.generate_key()
        sealed = age_encrypt(key, [x25519.Recipient.from_str(recipient)])
        append_line(
            keys_path,
            {
                "v": 1,
                "k": self.key_id,
                "bot": bot,
                "ts": _utc_stamp(),
                "recipient": recipient,
                "age": base64.b64encode(sealed).decode("ascii"),
            },
        )
        self._fernet: Fernet | None = Fernet(key)
        del key
        self._fd: int | None = open_append(log_path)
        self._prefix = b'{"k":' + json.dumps(self.key_id).encode() + b',"t":"'
        self.started = time.time()
        self.flows = 0

    def write(self, record: dict[str, Any]) -> None:
        """Encrypt one record and append it as a single line."""
        if self._fernet is None or self._fd is None:
            return
        plain = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
        token = self._fernet.encrypt(plain.encode("utf-8"))
        append_bytes(self._fd, self._prefix + token + b'"}\n')
        self.flows += 1

    def close(self) -> None:
        self._fernet = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
