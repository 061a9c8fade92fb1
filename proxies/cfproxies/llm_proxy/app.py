"""The aiohttp application: `/<provider>/<path>` forwarded upstream, chunk by
chunk, with the key swapped in, and one record per call (`handler.py`);
`/health`; and what starts and stops with the app.

The proxy's modules, each one job: `admission` (target, route, token),
`call` (one call's record, from start line to sealed end), `sealing` (a
record into its scrubbed line), `headers` (what crosses each way), `relay`
(the answer, whole or streamed), `replies` (what the proxy itself answers),
`state` (what the handlers share).

Why it is shaped this way (see shared/reference/proxy.md):
- the upstream client (`upstream.py`) never decompresses: bytes go to the
  gateway exactly as the provider sent them, and only the side parser
  decodes; the upstream is offered only encodings that parser can decode;
- every response is sent before its record is built, so scrubbing and the
  log write cost the gateway nothing;
- the server runs with `handler_cancellation=True`, so a gateway that hangs
  up cancels the handler wherever it waits (before the first byte too) and
  the upstream call is closed at once rather than left generating and billing.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web
from yarl import URL

from cfproxies.llm_proxy.budget import Budget
from cfproxies.llm_proxy.callmetrics import CallMetrics
from cfproxies.llm_proxy.config import ProxyConfig
from cfproxies.llm_proxy.handler import proxy
from cfproxies.llm_proxy.pricing import Pricer
from cfproxies.llm_proxy.reflect import KeyStripper
from cfproxies.llm_proxy.replies import json_reply
from cfproxies.llm_proxy.routes import allowed_for
from cfproxies.llm_proxy.spend import Ledger
from cfproxies.llm_proxy.state import STATE, ProxyState
from cfproxies.llm_proxy.trafficlog import TrafficLog
from cfproxies.llm_proxy.upstream import Origin, UpstreamPool
from cfproxies.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from cfproxies.scrub import ReloadingScrubber

__all__ = ["STATE", "ProxyState", "make_app"]


def make_app(config: ProxyConfig, clock: Callable[[], float] = time.time) -> web.Application:
    """The proxy as an aiohttp app; run it with `handler_cancellation=True`.
    `clock` (epoch seconds) decides the day and month of the money budgets."""
    app = web.Application(client_max_size=config.max_request_bytes)
    literals = [*config.keys.values(), *([config.token] if config.token else [])]
    log = TrafficLog(config.traffic_log)
    budget = Budget(config.daily_token_budget, config.rpm)
    budget.seed_from_log(config.traffic_log, config.bot)
    spend = Ledger(
        config.bot,
        config.daily_usd_budget,
        config.monthly_usd_budget,
        Pricer(config.prices, clock),
        config.audit_dir,
        clock,
        config.spend_checkpoint_s,
    )
    spend.rebuild()
    scrubber = ReloadingScrubber(config.scrub_rules, literals, _report_rules_problem)
    allowed = {name: allowed_for(p, config.extra_routes) for name, p in config.providers.items()}
    metrics = CallMetrics(
        config.bot,
        config.providers,
        lambda text: scrubber.get().scrub_text(text),
        lambda: state.inflight,
    )
    state = ProxyState(
        config, log, scrubber, budget, KeyStripper(literals), allowed, spend, metrics
    )
    if config.telemetry is not None:
        # Only now: a proxy with no endpoint never loads the SDK.
        from cfproxies.llm_proxy.telemetry import SpanExport

        state.telemetry = SpanExport(config.telemetry, config.bot)
    app[STATE] = state
    app.on_startup.append(_open_pools)
    app.on_shutdown.append(_drain_calls)
    app.on_cleanup.append(_close_pools_and_log)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_route("*", "/{provider}/{tail:.*}", proxy)
    return app


def _report_rules_problem(problem: str) -> None:
    print(f"cf-llm-proxy: scrub rules: {problem}", file=sys.stderr, flush=True)


async def _open_pools(app: web.Application) -> None:
    """The upstream's connection pool and the record writer's thread, and
    each provider's origin parsed once."""
    state = app[STATE]
    cfg = state.config
    state.record_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cf-record")
    # The TLS context loads the system's CA store (~25 ms): here at start,
    # not on the event loop under the first calls.
    https = any(p.base_url.startswith("https:") for p in cfg.providers.values())
    state.upstream = UpstreamPool(
        connect_timeout=cfg.connect_timeout,
        read_timeout=cfg.read_timeout,
        ssl_context=ssl.create_default_context() if https else None,
    )
    for name, provider in cfg.providers.items():
        base = URL(provider.base_url, encoded=True)
        state.origins[name] = (Origin.of(base), base.raw_path.rstrip("/"))


SHUTDOWN_GRACE_S = 3.0


async def _drain_calls(app: web.Application) -> None:
    """On SIGTERM: let calls in flight finish for a moment, then cancel the
    rest so that each still gets its record before Docker's kill (10 s)."""
    state = app[STATE]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SHUTDOWN_GRACE_S
    while state.tasks and loop.time() < deadline:
        await asyncio.sleep(0.05)
    state.stopping = True
    left = list(state.tasks)
    for task in left:
        task.cancel()
    if left:
        await asyncio.wait(left, timeout=1.0)


async def _close_pools_and_log(app: web.Application) -> None:
    state = app[STATE]
    if state.upstream is not None:
        state.upstream.close()
    writer = state.record_writer
    if writer is not None:  # every record handed over is written before the log closes
        await asyncio.get_running_loop().run_in_executor(None, writer.shutdown, True)
        state.record_writer = None
    state.spend.checkpoint(force=True)
    state.log.close()
    if state.telemetry is not None:  # the spans queued, sent in at most a second
        await asyncio.get_running_loop().run_in_executor(None, state.telemetry.shutdown)


async def metrics_page(request: web.Request) -> web.Response:
    """`/metrics` in the Prometheus text format (callmetrics.py), on the
    proxy's one port like `/health`: no secret in it, the models scrubbed."""
    body = request.app[STATE].metrics.exposition()
    return web.Response(body=body, headers={"content-type": METRICS_CONTENT_TYPE})


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    scrubber = state.scrubber.get()
    cfg = state.config
    return json_reply(
        200,
        {
            "ok": True,
            "service": "cf-llm-proxy",
            "bot": cfg.bot,
            "log": state.log.health(),
            "log_writable": state.log.ok,
            "last_write_error": state.log.last_error,
            "scrub": {
                "user_rules": len(scrubber.user_rules),
                "errors": scrubber.errors,
                "timeouts": scrubber.timeouts,
            },
            "budget": state.budget.snapshot(),
            "spend": state.spend.snapshot(),
            "token_required": cfg.token is not None,
            # Not the upstream URLs: the gateway may read this, and a URL may
            # name an internal host or carry a credential.
            "providers": {
                name: {"key_configured": p.key_env in cfg.keys}
                for name, p in sorted(cfg.providers.items())
            },
            "telemetry": None
            if state.telemetry is None
            else {
                "endpoint": state.telemetry.config.shown_endpoint,
                "capture_content": state.telemetry.config.capture_content,
                "spans": state.telemetry.emitted,
            },
            "inflight": state.inflight,
            "inflight_bytes": state.inflight_bytes,
            "uptime_s": round(time.time() - state.started, 1),
        },
    )
