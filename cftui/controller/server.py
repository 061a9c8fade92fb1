"""The controller's HTTP face (aiohttp): `POST /webhooks/github/<bot>`,
`POST /kill`, `GET /health`. Handlers only check and translate; what is
done is the `Controller`'s (`service`), which calls the domain.

Bodies are bounded before they are read whole (413 past the bound), and
an unauthenticated request is answered 401 with nothing read further,
nothing stored and nothing done.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from cftui.audit.events import record_event
from cftui.controller import remote_kill, webhooks_in
from cftui.controller.secrets import github_secret
from cftui.errors import CftuiError, UsageError
from cftui.fleet import BOT_NAME_RE
from cftui.inert import inert

if TYPE_CHECKING:
    from cftui.controller.service import Controller

CONTROLLER_KEY = web.AppKey("controller", object)
_SLACK = 1024


class _TooLarge(Exception):
    pass


async def _read_bounded(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise _TooLarge
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise _TooLarge
    return body


def _controller(request: web.Request) -> Controller:
    return request.app[CONTROLLER_KEY]  # type: ignore[return-value]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def kill(request: web.Request) -> web.Response:
    c = _controller(request)
    if not remote_kill.token_ok(c.secrets.token, request.headers.get("Authorization")):
        c.log(f"refused POST /kill from {request.remote}: no valid token")
        return web.json_response(
            {"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        body = await _read_bounded(request, remote_kill.MAX_BODY)
        bots = remote_kill.bots_to_kill(c.home, body)
    except _TooLarge:
        return _error(413, f"the body is larger than {remote_kill.MAX_BODY} bytes")
    except UsageError as exc:
        return _error(400, str(exc))
    except CftuiError as exc:
        return _error(500, str(exc))
    report = await c.remote_kill(bots)
    return web.json_response(report)


async def github(request: web.Request) -> web.Response:
    c = _controller(request)
    bot = request.match_info["bot"]
    if not BOT_NAME_RE.fullmatch(bot):
        return _error(404, "no such bot")
    try:
        known = bot in c.home.bots()
    except CftuiError as exc:
        return _error(500, str(exc))
    if not known:
        return _error(404, "no such bot")
    try:
        body = await _read_bounded(request, webhooks_in.MAX_BODY)
    except _TooLarge:
        c.log(f"{bot}: refused a webhook larger than {webhooks_in.MAX_BODY} bytes")
        return _error(413, "payload too large")
    secret = await asyncio.to_thread(github_secret, c.home, bot)
    if not webhooks_in.signature_ok(
        secret, body, request.headers.get(webhooks_in.SIGNATURE_HEADER)
    ):
        why = "no GITHUB_WEBHOOK_SECRET for it" if secret is None else "bad or missing signature"
        c.log(f"{bot}: refused a webhook from {request.remote}: {why}")
        return _error(401, "signature refused")
    delivery = webhooks_in.valid_delivery(request.headers.get(webhooks_in.DELIVERY_HEADER))
    event = webhooks_in.valid_event(request.headers.get(webhooks_in.EVENT_HEADER))
    if delivery is None or event is None:
        return _error(400, "X-GitHub-Delivery and X-GitHub-Event are required")
    if not await asyncio.to_thread(c.deliveries.add, delivery):
        c.log(f"{bot}: webhook {delivery} already seen: ignored")
        return web.json_response({"status": "duplicate", "delivery": delivery})
    try:
        payload = webhooks_in.parse_payload(body, request.content_type or "")
    except (ValueError, UnicodeDecodeError):
        payload = None
    try:
        remote, branch = await c.promote_target(bot)
    except CftuiError as exc:
        record_event(c.home, "webhook", bot, delivery=delivery, event=event, ok=False,
                     error=str(exc)[:200])  # fmt: skip
        c.log(f"{bot}: webhook {delivery} ({event}): {exc}")
        return _error(500, str(exc))
    decision = webhooks_in.decide(event, payload, remote, branch)
    record_event(
        c.home, "webhook", bot, delivery=delivery, event=event,
        promote=decision.promote, reason=decision.reason, after=decision.after,
    )  # fmt: skip
    c.log(f"{bot}: webhook {delivery} ({event}): {inert(decision.reason)}")
    if not decision.promote or decision.source is None:
        return web.json_response({"status": "ignored", "reason": decision.reason})
    c.promote_soon(bot, decision.source, delivery)
    return web.json_response({"status": "promoting", "source": decision.source}, status=202)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def make_app(
    controller: Controller, *, webhooks: bool = True, kill_route: bool = True
) -> web.Application:
    """The app; `webhooks=False` makes the kill-only app of `--kill-listen`."""
    app = web.Application(client_max_size=webhooks_in.MAX_BODY + _SLACK)
    app[CONTROLLER_KEY] = controller
    app.router.add_get("/health", health)
    if kill_route:
        app.router.add_post("/kill", kill)
    if webhooks:
        app.router.add_post("/webhooks/github/{bot}", github)
    return app
