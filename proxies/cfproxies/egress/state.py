"""What the addons share and the control file changes while running."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Unpack

from cfproxies.egress.config import EgressConfig
from cfproxies.egress.ledger import Attempt, RequestLedger, printable
from cfproxies.egress.metrics import EgressMetrics
from cfproxies.egress.patterns import Allowlist
from cfproxies.egress.session import CaptureSession

log = logging.getLogger("cf-egress")


@dataclass
class EgressState:
    """The live allowlist, the capture session (None when off), counters and
    the ledger of refused requests (`ledger`, loaded by `serve`).

    Addons read `allowlist` and `session` at the moment they decide, so a
    change applies to the next connection or flow without touching open ones.
    """

    config: EgressConfig
    allowlist: Allowlist
    session: CaptureSession | None = None
    refused: Counter[str] = field(default_factory=Counter)
    allowed: int = 0
    control_generation: int | None = None
    running: bool = True
    ledger: RequestLedger | None = None
    metrics: EgressMetrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = EgressMetrics(
            self.config.bot,
            lambda: self.capture,
            lambda: self.session.flows if self.session else 0,
        )

    @property
    def capture(self) -> bool:
        return self.session is not None

    def set_capture(self, on: bool) -> None:
        if on and self.session is None:
            c = self.config
            self.session = CaptureSession(c.bot, c.capture_log, c.capture_keys, c.recipient)
            log.info("capture on (key %s)", self.session.key_id)
        elif not on and self.session is not None:
            self.session.close()
            log.info(
                "capture off (key %s dropped, %d flows)", self.session.key_id, self.session.flows
            )
            self.session = None

    def set_allow(self, allowlist: Allowlist) -> None:
        self.allowlist = allowlist
        log.info("allowlist: %s", ", ".join(allowlist.texts) or "(empty: nothing is reachable)")

    def count_refusal(
        self,
        host: str,
        port: int | None,
        way: str,
        why: str = "not on the allowlist",
        *,
        ledger: bool = True,
        **attempt: Unpack[Attempt],
    ) -> None:
        """Count one refusal in the stats, the log and (unless `ledger` is
        False: the attempt is recorded later) the request ledger; see
        `ledger.RequestLedger.record` for what an attempt holds."""
        self.refused[f"{host}:{port}" if port else host] += 1
        self.metrics.count_refused(host, port, way)
        log.warning("refused %s %s:%s (%s)", way, printable(host, 255), port, why)
        if ledger:
            self.ledger_only(host, port, **attempt)

    def ledger_only(self, host: str, port: int | None, **attempt: Unpack[Attempt]) -> None:
        """Record one refused attempt in the ledger (already counted and logged)."""
        if self.ledger is not None:
            self.ledger.record(host, port, **attempt)

    def snapshot(self) -> dict:
        """The stats the operator's tools read (no secrets: no key, no bodies)."""
        return {
            "bot": self.config.bot,
            "running": self.running,
            "capture": self.capture,
            "key_id": self.session.key_id if self.session else None,
            "flows_captured": self.session.flows if self.session else 0,
            "allow": self.allowlist.texts,
            "allowed": self.allowed,
            "refused_total": sum(self.refused.values()),
            "refused": dict(self.refused.most_common(50)),
            "control_generation": self.control_generation,
        }
