"""The egress proxy's `/metrics`: what it let through and what it refused,
by host, in the Prometheus text format (`cfproxies.metrics`, written by
hand there: this environment carries mitmproxy's pins and nothing it does
not need).

The page itself is `metrics_page`. It is served on the proxy's own port, as a request addressed to the
proxy itself: `GET /metrics` with the proxy's own address (the one the
connection came in on) or one of its names (`SELF_NAMES`, the container's
hostname) as the target, on a plain connection, not inside a CONNECT
tunnel. Such a request could only loop back into the proxy, so it never
shadows a destination the allowlist could admit. It answers before the
allowlist is asked (the addon is added before it) and is never captured.

Hosts are the agent's to name: each family keeps at most `MAX_SERIES`
label sets (then `_other`), and a host is made printable before it is a
label (`cfproxies.metrics.label_value`)."""

from __future__ import annotations

from collections.abc import Callable

from cfproxies.metrics import Counter, Gauge, label_value, render


class EgressMetrics:
    """The families: allowed and refused by host, port and way, capture."""

    def __init__(self, bot: str, capture_on: Callable[[], bool], flows: Callable[[], int]) -> None:
        const = {"bot": bot}
        labels = ("host", "port", "via")
        self.allowed = Counter(
            "cf_egress_allowed_total",
            "Destinations the allowlist admitted: CONNECT tunnels and HTTP requests "
            "(a request inside an inspected tunnel counts as both).",
            labels,
            const,
        )
        self.refused = Counter(
            "cf_egress_refused_total",
            "Attempts the egress proxy refused, by host, port and where it refused "
            "(CONNECT, TLS SNI, HTTP, connect, raw).",
            labels,
            const,
        )
        self.capture = Gauge(
            "cf_egress_capture_on",
            "1 while capture is on.",
            lambda: [((), float(capture_on()))],
            (),
            const,
        )
        self.flows = Gauge(
            "cf_egress_flows_captured",
            "Flows recorded by the current capture session.",
            lambda: [((), float(flows()))],
            (),
            const,
        )

    def count_allowed(self, host: str, port: int | None, via: str) -> None:
        self.allowed.inc((label_value(host), str(port or ""), via))

    def count_refused(self, host: str, port: int | None, via: str) -> None:
        self.refused.inc((label_value(host), str(port or ""), via))

    def exposition(self) -> bytes:
        return render([self.allowed, self.refused, self.capture, self.flows])
