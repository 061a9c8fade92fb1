"""The egress proxy's `/metrics` page (the families: `metrics`): a mitmproxy
addon that answers `GET /metrics` addressed to the proxy itself, before the
allowlist is asked; see `metrics` for what counts as addressed to itself."""

from __future__ import annotations

import socket
from collections.abc import Iterable

from mitmproxy import http

from cfproxies.egress.metrics import EgressMetrics
from cfproxies.metrics import CONTENT_TYPE

OWN_FLOW = "cf.own"  # flow metadata: the proxy answered it itself (not captured)
SELF_NAMES = frozenset({"localhost", "egress", "127.0.0.1", "::1"})


def _plain(address: str) -> str:
    return address.removeprefix("::ffff:")  # an IPv4 client on a dual-stack socket


class MetricsPage:
    """Answers `GET /metrics` addressed to the proxy itself."""

    def __init__(self, metrics: EgressMetrics, names: Iterable[str] = ()) -> None:
        self.metrics = metrics
        self.names = SELF_NAMES | {socket.gethostname().lower(), *names}

    def _to_self(self, flow: http.HTTPFlow) -> bool:
        client = flow.client_conn
        if client.tls_established or client.sockname is None:
            return False  # inside a tunnel: the agent's destination, never the proxy
        req = flow.request
        here, port = _plain(str(client.sockname[0])), client.sockname[1]
        host = req.host.lower().strip("[]")
        return req.port == port and (host == here or host in self.names)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        if flow.response is not None or req.method != "GET" or req.path != "/metrics":
            return
        if not self._to_self(flow):
            return
        flow.metadata[OWN_FLOW] = True
        flow.response = http.Response.make(
            200, self.metrics.exposition(), {"content-type": CONTENT_TYPE}
        )
