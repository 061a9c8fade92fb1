"""GitHub deliveries (CONTRACTS §11): verified, deduplicated, and turned
into the promote-from-remote that `cftui promote BOT --from REMOTE/BRANCH`
runs, for a merged pull request or a push to the bot's approved branch.

A delivery is refused (401, nothing done, nothing stored) when the bot has
no `GITHUB_WEBHOOK_SECRET` or `X-Hub-Signature-256` is missing or wrong;
the compare is constant-time. Only a verified delivery's id reaches the
seen-ids store (so nobody without the secret can fill it), and an id seen
before is acknowledged and ignored. Everything here is pure or a small file;
the HTTP side is in `server`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cftui.controller.lock import controller_dir
from cftui.fleet import FleetHome
from cftui.securefs import atomic_write_private, make_private_dirs

SIGNATURE_HEADER = "X-Hub-Signature-256"
DELIVERY_HEADER = "X-GitHub-Delivery"
EVENT_HEADER = "X-GitHub-Event"
MAX_BODY = 1 << 20  # GitHub caps payloads at 25 MB; a push we act on is far smaller
SEEN_BOUND = 5000
_DELIVERY_RE = re.compile(r"^[A-Za-z0-9-]{1,100}$")
_EVENT_RE = re.compile(r"^[a-z_]{1,50}$")


def signature_ok(secret: bytes | None, body: bytes, header: str | None) -> bool:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.encode("utf-8", "replace"))


def valid_delivery(value: str | None) -> str | None:
    return value if value and _DELIVERY_RE.fullmatch(value) else None


def valid_event(value: str | None) -> str | None:
    return value if value and _EVENT_RE.fullmatch(value) else None


class SeenDeliveries:
    """The ids of the last `SEEN_BOUND` verified deliveries, persisted in
    `controller/deliveries.json`, so a redelivery after a restart is still
    a replay."""

    def __init__(self, home: FleetHome, bound: int = SEEN_BOUND) -> None:
        self.path = controller_dir(home) / "deliveries.json"
        self.bound = bound
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._mutex = threading.Lock()
        try:
            with open(self.path, "rb") as f:
                ids = json.loads(f.read(4 << 20))
            for i in ids if isinstance(ids, list) else []:
                if isinstance(i, str) and valid_delivery(i):
                    self._ids[i] = None
        except (OSError, ValueError):
            pass

    def add(self, delivery: str) -> bool:
        """Record the id; False when it had been seen (a replay)."""
        with self._mutex:
            if delivery in self._ids:
                return False
            self._ids[delivery] = None
            while len(self._ids) > self.bound:
                self._ids.popitem(last=False)
            make_private_dirs(self.path.parent)
            atomic_write_private(self.path, json.dumps(list(self._ids)) + "\n")
            return True

    def __len__(self) -> int:
        return len(self._ids)


@dataclass(frozen=True)
class Decision:
    """What a verified delivery asks for: promote from `source`, or nothing
    (with the reason, for the answer and the log)."""

    promote: bool
    reason: str
    source: str | None = None
    after: str | None = None  # the commit GitHub names, for the record


def decide(event: str, payload: Any, remote: str, branch: str) -> Decision:
    """A `push` to refs/heads/<branch>, or a `pull_request` closed as merged
    into <branch>, promotes from <remote>/<branch>; anything else is
    acknowledged and ignored."""
    source = f"{remote}/{branch}"
    if not isinstance(payload, dict):
        return Decision(False, "the payload is not a JSON object")
    if event == "ping":
        return Decision(False, "ping")
    if event == "push":
        ref = payload.get("ref")
        if ref != f"refs/heads/{branch}":
            return Decision(False, f"a push to {_short(ref)}, not to {branch}")
        if payload.get("deleted") is True:
            return Decision(False, f"{branch} was deleted on the remote")
        return Decision(True, f"push to {branch}", source, _sha(payload.get("after")))
    if event == "pull_request":
        pr = payload.get("pull_request")
        if not isinstance(pr, dict):
            return Decision(False, "no pull_request in the payload")
        base_raw = pr.get("base")
        base: dict[str, Any] = base_raw if isinstance(base_raw, dict) else {}
        if payload.get("action") != "closed" or pr.get("merged") is not True:
            return Decision(False, f"pull request {_short(payload.get('action'))}, not merged")
        if base.get("ref") != branch:
            return Decision(False, f"merged into {_short(base.get('ref'))}, not {branch}")
        return Decision(True, f"pull request merged into {branch}", source,
                        _sha(pr.get("merge_commit_sha")))  # fmt: skip
    return Decision(False, f"{event} events are not acted on")


def _short(value: Any) -> str:
    text = str(value) if value is not None else "nothing"
    return repr(text[:80])


def _sha(value: Any) -> str | None:
    return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{40,64}", value) else None


def parse_payload(body: bytes, content_type: str) -> Any:
    """The JSON payload, whether sent as application/json or GitHub's
    form-encoded `payload=` (the other content type a hook may choose)."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        from urllib.parse import parse_qs

        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
        body = (fields.get("payload") or [""])[0].encode()
    return json.loads(body)
