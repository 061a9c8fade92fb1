"""The allowlist addon: nothing unlisted leaves, whatever the way in.

mitmproxy's `allow_hosts`/`ignore_hosts` only choose what to intercept, so
refusing is done here, on every hook a destination shows up in:

- `http_connect`: the CONNECT target, refused before any upstream connect;
- `tls_clienthello`: the SNI (a CONNECT to a listed host that asks for
  another name in TLS); such a connection is intercepted rather than
  tunnelled, so the refusal can be said in HTTP inside it;
- `request`: plain HTTP (absolute URL and Host header) and every request
  inside an intercepted connection;
- `server_connect`: the last gate before a socket opens; a host allowed only
  through a `*.domain` pattern must also resolve to public addresses.

Refusals answer 403 with a JSON body the agent can read, and are counted.
"""

from __future__ import annotations

import asyncio
import json
import socket

from mitmproxy import connection, http, tls
from mitmproxy.proxy import server_hooks

from cfproxies.egress.patterns import Decision, is_public_address
from cfproxies.egress.state import EgressState

REFUSED_HEADER = "x-clawfactory-egress"


class Allowlist:
    """Refuses every destination the live allowlist does not admit."""

    def __init__(self, state: EgressState) -> None:
        self.state = state

    def _refusal(self, d: Decision, way: str) -> http.Response:
        bot = self.state.config.bot
        target = f"{d.host}:{d.port}" if d.port else d.host
        body = {
            "error": "egress_refused",
            "bot": bot,
            "host": d.host,
            "port": d.port,
            "via": way,
            "message": (
                f"ClawFactory egress proxy: {target or 'this destination'} is not on bot "
                f"{bot}'s egress allowlist; the operator can allow it with "
                f"`cftui egress {bot} --allow {d.host or 'HOST'}`"
            ),
        }
        return http.Response.make(
            403,
            json.dumps(body).encode() + b"\n",
            {"content-type": "application/json", REFUSED_HEADER: "refused"},
        )

    def _check(self, host: str | None, port: int | None) -> Decision:
        return self.state.allowlist.check(host, port)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        d = self._check(flow.request.host, flow.request.port)
        if not d.allowed:
            self.state.count_refusal(d.host, d.port, "CONNECT")
            flow.metadata["cf.refused"] = True
            flow.response = self._refusal(d, "CONNECT")

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

    def request(self, flow: http.HTTPFlow) -> None:
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
        if d.exact:
            return  # the operator listed this very host or address
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError:
            return  # mitmproxy reports the resolution failure itself
        inner = sorted({str(i[4][0]) for i in infos if not is_public_address(str(i[4][0]))})
        if inner:
            self.state.count_refusal(d.host, d.port, "private address")
            server.error = (
                f"{host} resolves to a non-public address ({', '.join(inner)}); "
                f"list it exactly to allow it"
            )
