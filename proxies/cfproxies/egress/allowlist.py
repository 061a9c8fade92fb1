"""The allowlist addon: nothing unlisted leaves, whatever the way in.

mitmproxy's `allow_hosts`/`ignore_hosts` only choose what to intercept, so
refusing is done here, on every hook a destination shows up in:

- `http_connect`: the CONNECT target, refused before any upstream connect;
- `tls_clienthello`: the SNI (a CONNECT to a listed host that asks for
  another name in TLS); such a connection is intercepted rather than
  tunnelled, so the refusal can be said in HTTP inside it;
- `request`: plain HTTP (absolute URL and Host header) and every request
  inside an intercepted connection;
- `server_connect`: the last gate before a socket opens. Every name is
  resolved here (`resolve.Router`), an address neither public nor listed is
  refused, and mitmproxy connects to the address checked (`server.address`
  is swapped for it until the socket is open; SNI and Host keep the name).
  CONNECT and plain requests are routed early too, so that such a refusal is
  the same readable 403 as the others rather than a bare 502.

Refusals answer 403 with a JSON body the agent can read, and are counted.
"""

from __future__ import annotations

import json

from mitmproxy import connection, http, tls
from mitmproxy.proxy import server_hooks

from cfproxies.egress.patterns import Decision
from cfproxies.egress.resolve import Resolver, Route, Router
from cfproxies.egress.state import EgressState

REFUSED_HEADER = "x-clawfactory-egress"


class Allowlist:
    """Refuses every destination the live allowlist does not admit."""

    def __init__(self, state: EgressState, resolve: Resolver | None = None) -> None:
        self.state = state
        self.router = Router(resolve)
        self._names: dict[str, tuple[str, int]] = {}  # server id -> name swapped out

    def _answer(self, status: int, body: dict, tag: str) -> http.Response:
        body = {"bot": self.state.config.bot, **body}
        return http.Response.make(
            status,
            json.dumps(body).encode() + b"\n",
            {"content-type": "application/json", REFUSED_HEADER: tag},
        )

    def _refusal(self, d: Decision, way: str) -> http.Response:
        bot = self.state.config.bot
        target = f"{d.host}:{d.port}" if d.port else d.host
        return self._answer(
            403,
            {
                "error": "egress_refused",
                "host": d.host,
                "port": d.port,
                "via": way,
                "message": (
                    f"ClawFactory egress proxy: {target or 'this destination'} is not on bot "
                    f"{bot}'s egress allowlist; the operator can allow it with "
                    f"`cftui egress {bot} --allow {d.host or 'HOST'}`"
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
            self.state.count_refusal(route.host, route.port, way, _inner_why(route))
        flow.metadata["cf.refused"] = True
        flow.response = self._route_refusal(route, way)
        return False

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        d = self._check(flow.request.host, flow.request.port)
        if not d.allowed:
            self.state.count_refusal(d.host, d.port, "CONNECT")
            flow.metadata["cf.refused"] = True
            flow.response = self._refusal(d, "CONNECT")
            return
        await self._route(flow, "CONNECT")

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        sni = data.client_hello.sni
        address = data.context.server.address
        if not sni:
            return  # the CONNECT target (or the request inside) is checked
        port = address[1] if address else 443
        d = self._check(sni, port)
        if not d.allowed:
            self.state.count_refusal(d.host, d.port, "TLS SNI")
            # Intercept instead of tunnelling, and never open TLS upstream
            # with this name: the request hook answers 403 inside.
            data.ignore_connection = False
            data.establish_server_tls_first = False

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
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
        for host, port in candidates:
            d = self._check(host, port)
            if not d.allowed:
                self.state.count_refusal(d.host, d.port, "HTTP")
                flow.metadata["cf.refused"] = True
                flow.response = self._refusal(d, "HTTP")
                return
        if await self._route(flow, "HTTP"):
            self.state.allowed += 1

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        server: connection.Server = data.server
        if not server.address:
            return
        host, port = server.address[0], server.address[1]
        d = self._check(host, port)
        if not d.allowed:
            self.state.count_refusal(d.host, d.port, "connect")
            server.error = f"{host}:{port} is not on the egress allowlist"
            return
        route = await self.router.route(self.state.allowlist, host, port)
        if route.error is not None:
            server.error = f"cannot resolve {host}: {route.error}"
            return
        if route.address is None:
            self.state.count_refusal(route.host, port, "connect", _inner_why(route))
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
