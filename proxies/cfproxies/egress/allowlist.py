"""The allowlist addon: nothing unlisted leaves, whatever the way in.

mitmproxy's `allow_hosts`/`ignore_hosts` only choose what to intercept, so
refusing is done here, on every hook a destination shows up in:

- `http_connect`: the CONNECT target, refused before any upstream connect;
- `tls_clienthello`: the SNI (a CONNECT to a listed host that asks for
  another name in TLS); such a connection is intercepted rather than
  tunnelled, so the refusal can be said in HTTP inside it. A connection to
  a host that rules alone list (methods and path prefixes, see `patterns`)
  is intercepted too, capture on or off, so each request in it is checked;
- `requestheaders`: plain HTTP (absolute URL and Host header) and every
  request inside an intercepted connection (each HTTP/2 stream, a WebSocket
  upgrade as its GET, a method override header as the method it names too),
  checked against the rules of its host before any of it goes upstream;
- `next_layer`: a connection to a host under rules that turns out not to be
  TLS or HTTP (raw TCP, DNS) is closed: it would pass no rule;
- `server_connect`: the last gate before a socket opens. Every name is
  resolved here (`resolve.Router`), an address neither public nor listed is
  refused, and mitmproxy connects to the address checked (`server.address`
  is swapped for it until the socket is open; SNI and Host keep the name).
  CONNECT and plain requests are routed early too, so that such a refusal is
  the same readable 403 as the others rather than a bare 502.

Refusals answer 403 with a JSON body the agent can read (naming the rule
that did not match, when one did not), and are counted, in the stats and in
the ledger of refused requests (`ledger`) with the entry that would have let
each through. A refused request whose body is announced larger than the
proxy buffers (`stream_large_bodies`) is cut off instead of answered: the
403 could only come after reading all of it.
"""

from __future__ import annotations

import json

from mitmproxy import connection, http, tls
from mitmproxy.proxy import commands, events, layer, layers, server_hooks
from mitmproxy.proxy.layers import tls as tls_layers

from cfproxies.egress.ledger import MAX_PATH, printable
from cfproxies.egress.patterns import Decision, RequestDecision, host_port, suggest_prefix
from cfproxies.egress.patterns import printable_path as request_path
from cfproxies.egress.resolve import Resolver, Route, Router
from cfproxies.egress.state import EgressState

REFUSED_HEADER = "x-clawfactory-egress"
METHOD_OVERRIDES = ("x-http-method-override", "x-http-method", "x-method-override")
# What mitmproxy buffers of a request body (`stream_large_bodies` in __main__):
# a refused request announcing more is cut off rather than read to answer it.
BUFFERED_BODY = 4 * 1024 * 1024
# The layers a connection to a host under rules may take: TLS (whose inner
# layer is decided again) and HTTP; anything else would bypass the rules.
_INSPECTABLE = (layers.HttpLayer, tls_layers.ServerTLSLayer, tls_layers.ClientTLSLayer)


class _Closed(layer.Layer):
    """Stands in for a raw TCP, UDP or DNS layer to a host under rules:
    closes both ends on its first event, relays nothing."""

    done = False

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if self.done:
            return
        self.done = True
        yield commands.CloseConnection(self.context.client)
        if self.context.server.connected:
            yield commands.CloseConnection(self.context.server)


class Allowlist:
    """Refuses every destination the live allowlist does not admit."""

    def __init__(self, state: EgressState, resolve: Resolver | None = None) -> None:
        self.state = state
        self.router = Router(resolve)
        self._names: dict[str, tuple[str, int]] = {}  # server id -> name swapped out
        self._tunnels: set[str] = set()  # client connections that came by CONNECT
        # Client connections whose TLS asked for a refused name, until a
        # request in them is refused (then that request is the attempt counted).
        self._sni_refused: dict[str, tuple[str, int]] = {}

    def _answer(self, status: int, body: dict, tag: str) -> http.Response:
        body = {"bot": self.state.config.bot, **body}
        return http.Response.make(
            status,
            json.dumps(body).encode() + b"\n",
            {"content-type": "application/json", REFUSED_HEADER: tag},
        )

    def _refusal(self, d: Decision | RequestDecision, way: str) -> http.Response:
        bot = self.state.config.bot
        host = printable(d.host, 255)
        if isinstance(d, RequestDecision) and d.rule is not None:
            method, path = printable(d.method, 32), request_path(d.path or "")[:MAX_PATH]
            allow = f"`cftui egress {bot} --allow '{d.suggest}'`" if d.suggest else "none"
            return self._answer(
                403,
                {
                    "error": "egress_refused",
                    "reason": "rule",
                    "host": host,
                    "port": d.port,
                    "method": method,
                    "rule": d.rule.text,
                    "rules": [r.text for r in d.rules],
                    "suggest": d.suggest,
                    "via": way,
                    "message": (
                        f"ClawFactory egress proxy: {method} {path or '(this path)'} on "
                        f"{host_port(host, d.port)} is not allowed by bot {bot}'s egress rule "
                        f"'{d.rule.text}'; the entry that would allow it: {allow}"
                    ),
                },
                "refused",
            )
        target = f"{host}:{d.port}" if d.port else host
        return self._answer(
            403,
            {
                "error": "egress_refused",
                "host": host,
                "port": d.port,
                "rule": None,
                "via": way,
                "message": (
                    f"ClawFactory egress proxy: {target or 'this destination'} is not on bot "
                    f"{bot}'s egress allowlist; the operator can allow it with "
                    f"`cftui egress {bot} --allow {host or 'HOST'}`"
                ),
            },
            "refused",
        )

    def _route_refusal(self, route: Route, way: str) -> http.Response:
        """The answer when a listed name has no address it may be reached at."""
        bot = self.state.config.bot
        if route.error is not None:
            return self._answer(
                502,
                {
                    "error": "egress_unresolved",
                    "host": route.host,
                    "port": route.port,
                    "via": way,
                    "message": f"ClawFactory egress proxy: cannot resolve {route.host}: "
                    f"{route.error}",
                },
                "unresolved",
            )
        inner = ", ".join(route.inner)
        return self._answer(
            403,
            {
                "error": "egress_refused",
                "reason": "non_public_address",
                "host": route.host,
                "port": route.port,
                "addresses": list(route.inner),
                "via": way,
                "message": (
                    f"ClawFactory egress proxy: {route.host} resolves to {inner}, not a public "
                    f"address, and no address of it is on bot {bot}'s egress allowlist; the "
                    f"operator can allow it with `cftui egress {bot} --allow {route.inner[0]}`"
                ),
            },
            "refused",
        )

    def _check(self, host: str | None, port: int | None) -> Decision:
        return self.state.allowlist.check(host, port)

    async def _route(self, flow: http.HTTPFlow, way: str) -> bool:
        """Whether the flow's target has an address it may be reached at;
        answers the flow (and counts a refusal) when it has not."""
        req = flow.request
        route = await self.router.route(self.state.allowlist, req.host, req.port)
        if route.address is not None:
            return True
        if route.refused:
            seen = way != "CONNECT"
            self.state.count_refusal(
                route.host,
                route.port,
                way,
                _inner_why(route),
                connect=self._came_by_connect(flow),
                method=req.method if seen else None,
                path=request_path(req.path) if seen else None,
                suggest=host_port(route.inner[0], route.port),
            )
        flow.metadata["cf.refused"] = True
        flow.response = self._route_refusal(route, way)
        return False

    def _came_by_connect(self, flow: http.HTTPFlow) -> bool:
        return flow.client_conn.id in self._tunnels or flow.client_conn.tls_established

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        d = self._check(flow.request.host, flow.request.port)
        if not d.allowed:
            self.state.count_refusal(
                d.host, d.port, "CONNECT", connect=True, suggest=self._suggest_host(d)
            )
            flow.metadata["cf.refused"] = True
            flow.response = self._refusal(d, "CONNECT")
            return
        if await self._route(flow, "CONNECT"):
            self._tunnels.add(flow.client_conn.id)
            self.state.metrics.count_allowed(flow.request.host, flow.request.port, "CONNECT")

    def _suggest_host(self, d: Decision) -> str | None:
        """The plain entry that would list a refused host (None: not a host)."""
        return self.state.allowlist.check_request(d.host, d.port, "GET", "/").suggest

    def client_disconnected(self, client: connection.Client) -> None:
        self._tunnels.discard(client.id)
        pending = self._sni_refused.pop(client.id, None)
        if pending is not None:  # no request came: the handshake was the attempt
            d = self._check(*pending)
            self.state.ledger_only(
                d.host, d.port, connect=True, suggest=None if d.allowed else self._suggest_host(d)
            )

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        sni = data.client_hello.sni
        address = data.context.server.address
        port = address[1] if address else 443
        if address and self._check(address[0], port).inspect:
            data.ignore_connection = False  # rules alone list the CONNECT target
        if not sni:
            return  # the CONNECT target (or the request inside) is checked
        d = self._check(sni, port)
        if not d.allowed:
            self.state.count_refusal(d.host, d.port, "TLS SNI", ledger=False)
            self._sni_refused[data.context.client.id] = (d.host, port)
            # Intercept instead of tunnelling, and never open TLS upstream
            # with this name: the request hook answers 403 inside.
            data.ignore_connection = False
            data.establish_server_tls_first = False
        elif d.inspect:
            data.ignore_connection = False

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        chosen = nextlayer.layer
        if chosen is None or isinstance(chosen, _INSPECTABLE):
            return
        ctx = nextlayer.context
        names = [ctx.client.sni] if ctx.client.sni else []
        if ctx.server.address:
            names.append(ctx.server.address[0])
        port = ctx.server.address[1] if ctx.server.address else None
        for name in names:
            d = self._check(name, port)
            if d.inspect:
                assert d.pattern is not None
                self.state.count_refusal(
                    d.host,
                    port,
                    "raw",
                    "not HTTP, which the host's rules cannot check",
                    connect=ctx.client.id in self._tunnels,
                    rule=d.pattern.text,
                    suggest=host_port(d.host, port),
                )
                nextlayer.layer = _Closed(ctx)
                return

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Every request, before any of it goes upstream: its host (every name
        it gives), the rules that narrow that host, and an address to reach."""
        if flow.response is not None or flow.error is not None:
            return
        req = flow.request
        candidates = [(req.host, req.port)]
        host_header = req.host_header
        if host_header:
            h, _, p = (
                host_header.rpartition(":")
                if host_header.count(":") == 1
                else (
                    host_header,
                    "",
                    "",
                )
            )
            candidates.append((h or host_header, int(p) if p.isdigit() else req.port))
        if flow.client_conn.sni:
            candidates.append((flow.client_conn.sni, req.port))
        allowlist = self.state.allowlist
        # A method override header makes many frameworks act as that method:
        # the request must pass as each method it names too.
        methods = dict.fromkeys(
            [req.method, *(v.strip() for h in METHOD_OVERRIDES for v in req.headers.get_all(h))]
        )
        for host, port in dict.fromkeys(candidates):
            for method in methods:
                d = allowlist.check_request(host, port, method, req.path)
                if not d.allowed:
                    self._refuse_request(flow, d)
                    return
        if await self._route(flow, "HTTP"):
            self.state.allowed += 1
            self.state.metrics.count_allowed(req.host, req.port, "HTTP")

    def _refuse_request(self, flow: http.HTTPFlow, d: RequestDecision) -> None:
        req = flow.request
        self._sni_refused.pop(flow.client_conn.id, None)
        rule = d.rule
        shown_path = request_path(req.path)
        self.state.count_refusal(
            d.host,
            d.port,
            "HTTP",
            "not on the allowlist" if rule is None else "not allowed by a rule",
            connect=self._came_by_connect(flow),
            method=d.method,
            path=shown_path,
            rule=rule.text if rule is not None else None,
            suggest=d.suggest,
            prefix=suggest_prefix(d.path or shown_path) if rule is not None else None,
        )
        flow.metadata["cf.refused"] = True
        length = req.headers.get("content-length", "")
        if length.isdigit() and int(length) > BUFFERED_BODY:
            flow.kill()  # answering would mean reading it all first
            return
        flow.response = self._refusal(d, "HTTP")

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        server: connection.Server = data.server
        if not server.address:
            return
        host, port = server.address[0], server.address[1]
        d = self._check(host, port)
        if not d.allowed:
            self.state.count_refusal(d.host, d.port, "connect", suggest=self._suggest_host(d))
            server.error = f"{host}:{port} is not on the egress allowlist"
            return
        route = await self.router.route(self.state.allowlist, host, port)
        if route.error is not None:
            server.error = f"cannot resolve {host}: {route.error}"
            return
        if route.address is None:
            self.state.count_refusal(
                route.host,
                port,
                "connect",
                _inner_why(route),
                suggest=host_port(route.inner[0], port),
            )
            server.error = (
                f"{host} resolves to {', '.join(route.inner)}, not a public address and "
                f"not on the egress allowlist"
            )
            return
        if route.address != host:
            # Connect to the address just checked, not to whatever a second
            # lookup would say. The name comes back once the socket is open.
            self._names[server.id] = server.address
            server.address = (route.address, port)

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        self._restore(data.server)

    def server_connect_error(self, data: server_hooks.ServerConnectionHookData) -> None:
        self._restore(data.server)

    def _restore(self, server: connection.Server) -> None:
        """Give the connection its name back: mitmproxy reuses connections by
        address, and the HTTP layer reads the origin-form host from it. The
        socket is already connected to the checked address; only the label
        changes, so mitmproxy's guard against re-addressing an open
        connection (`Server.__setattr__`) is stepped around on purpose."""
        name = self._names.pop(server.id, None)
        if name is not None:
            object.__setattr__(server, "address", name)


def _inner_why(route: Route) -> str:
    return f"resolves to {', '.join(route.inner)}, not public and not listed"
