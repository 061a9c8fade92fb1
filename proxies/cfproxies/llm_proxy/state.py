"""What every handler of one proxy shares, built once by `make_app`."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from cfproxies.llm_proxy.budget import Budget
from cfproxies.llm_proxy.callmetrics import CallMetrics
from cfproxies.llm_proxy.config import ProxyConfig
from cfproxies.llm_proxy.reflect import KeyStripper
from cfproxies.llm_proxy.routes import Allowed
from cfproxies.llm_proxy.spend import Ledger
from cfproxies.llm_proxy.trafficlog import TrafficLog
from cfproxies.llm_proxy.upstream import Origin, UpstreamPool
from cfproxies.scrub import ReloadingScrubber

if TYPE_CHECKING:  # the SDK is imported only when an endpoint is set
    from cfproxies.llm_proxy.telemetry import SpanExport


@dataclass
class ProxyState:
    """Everything a handler needs, built once per app."""

    config: ProxyConfig
    log: TrafficLog
    scrubber: ReloadingScrubber
    budget: Budget
    keys: KeyStripper
    allowed: dict[str, Allowed]
    spend: Ledger
    metrics: CallMetrics
    telemetry: SpanExport | None = None  # each call's span (telemetry.py), when configured
    upstream: UpstreamPool | None = None
    # Each provider's origin and base path, parsed once.
    origins: dict[str, tuple[Origin, str]] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    inflight: int = 0
    inflight_bytes: int = 0  # request bytes held by calls not yet written (see Call.hold)
    tasks: set[asyncio.Task] = field(default_factory=set)
    stopping: bool = False
    record_writer: ThreadPoolExecutor | None = None  # seals large records off the event loop


STATE = web.AppKey("cf_llm_proxy_state", ProxyState)
