"""DNS rebinding: a listed name reaches only an address the proxy checked.

The router on its own (a resolver answering from a table), the addon's
`server_connect` with mitmproxy's own connection objects, and a real
cf-egress whose resolver knows names mitmproxy cannot resolve, in front of
the test's own servers on loopback."""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import textwrap

import pytest
from cfproxies.egress import resolve
from cfproxies.egress.patterns import Allowlist
from cfproxies.egress.resolve import Router

from cftui.audit.capture import CaptureReader
from tests.egress.egress_support import CF_EGRESS, get_json, https_via, raw_connect

TABLE = {
    "api.example.com": ["93.184.216.34"],
    "internal.example.com": ["10.0.0.7"],
    "meta.example.com": ["169.254.169.254"],
    "mixed.example.com": ["10.0.0.7", "::1", "93.184.216.35"],
    "mapped.example.com": ["::ffff:10.0.0.1", "0.0.0.0", "224.0.0.1", "fe80::1%eth0"],
    "listed.example.com": ["10.0.0.8"],
    "db.example.com": ["10.1.2.3"],
}


class TableResolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return self.table[host]


def _routes(allow: list[str], queries: list[tuple[str, int]], resolver=None):
    resolver = resolver or TableResolver(TABLE)
    router = Router(resolver)
    patterns = Allowlist.parse(allow)

    async def run():
        return [await router.route(patterns, h, p) for h, p in queries]

    return asyncio.run(run()), resolver


def test_router_keeps_public_or_listed_addresses_only():
    allow = ["*.example.com", "10.0.0.8", "10.1.0.0/16:5432"]
    queries = [
        ("api.example.com", 443),
        ("internal.example.com", 443),
        ("meta.example.com", 80),
        ("mixed.example.com", 443),
        ("mapped.example.com", 443),
        ("listed.example.com", 443),
        ("db.example.com", 5432),
        ("db.example.com", 80),
        ("nowhere.example.com", 443),
    ]
    routes, _ = _routes(allow, queries)
    got = {(r.host, r.port): (r.address, r.inner, r.refused, r.error is not None) for r in routes}
    assert got[("api.example.com", 443)] == ("93.184.216.34", (), False, False)
    assert got[("internal.example.com", 443)] == (None, ("10.0.0.7",), True, False)
    assert got[("meta.example.com", 80)] == (None, ("169.254.169.254",), True, False)
    # The private answers are skipped, never connected to.
    assert got[("mixed.example.com", 443)][0] == "93.184.216.35"
    assert got[("mapped.example.com", 443)] == (
        None,
        ("::ffff:10.0.0.1", "0.0.0.0", "224.0.0.1", "fe80::1"),
        True,
        False,
    )
    assert got[("listed.example.com", 443)][0] == "10.0.0.8"  # the address is listed
    assert got[("db.example.com", 5432)][0] == "10.1.2.3"  # the range, on its port
    assert got[("db.example.com", 80)][2] is True  # ... and on no other
    assert got[("nowhere.example.com", 443)][3] is True
    assert routes[-1].refused is False  # a failed lookup is an error, not a refusal


def test_router_reads_ip_literals_itself_and_caches_names_briefly(monkeypatch):
    resolver = TableResolver({"api.example.com": ["93.184.216.34"]})
    routes, _ = _routes(
        ["127.0.0.0/8", "*.example.com"],
        [("127.1", 80), ("API.example.com.", 443), ("api.example.com", 80)],
        resolver,
    )
    assert routes[0].address == "127.0.0.1"  # the spelling the socket will use
    assert [r.address for r in routes[1:]] == ["93.184.216.34", "93.184.216.34"]
    assert resolver.calls == ["api.example.com"]
    # Rebinding after the cache expires: the new answer is checked again.
    monkeypatch.setattr(resolve, "CACHE_SECONDS", 0.0)
    resolver = TableResolver({"api.example.com": ["93.184.216.34"]})
    router = Router(resolver)
    patterns = Allowlist.parse(["*.example.com"])

    async def twice():
        first = await router.route(patterns, "api.example.com", 443)
        resolver.table["api.example.com"] = ["127.0.0.1"]
        return first, await router.route(patterns, "api.example.com", 443)

    first, second = asyncio.run(twice())
    assert first.address == "93.184.216.34"
    assert second.address is None and second.inner == ("127.0.0.1",)


HOOK_SCRIPT = textwrap.dedent(
    """
    import asyncio, json
    from pathlib import Path
    from mitmproxy import connection
    from mitmproxy.proxy.server_hooks import ServerConnectionHookData
    from cfproxies.egress.allowlist import Allowlist
    from cfproxies.egress.config import EgressConfig
    from cfproxies.egress.patterns import Allowlist as Patterns
    from cfproxies.egress.state import EgressState

    TABLE = {"api.example.com": ["93.184.216.34"], "internal.example.com": ["10.0.0.7"],
             "pinned.example.com": ["10.0.0.8"], "exact.example.com": ["10.0.0.9"]}

    async def resolver(host, port):
        return TABLE[host]

    async def main():
        cfg = EgressConfig("127.0.0.1", 0, "b", Path("."), Path("."), "age1x", False, (),
                           None, None, None, 1, 1)
        state = EgressState(
            cfg, Patterns.parse(["*.example.com", "exact.example.com", "10.0.0.8"]))
        addon = Allowlist(state, resolver)
        out = {}
        for host in ["api.example.com", "internal.example.com", "pinned.example.com",
                     "exact.example.com", "other.test"]:
            server = connection.Server(address=(host, 443))
            server.sni = host
            client = connection.Client(peername=("127.0.0.1", 1), sockname=("127.0.0.1", 2))
            data = ServerConnectionHookData(server=server, client=client)
            await addon.server_connect(data)
            at_connect = list(server.address)
            if server.error is None:
                server.state = connection.ConnectionState.OPEN  # as mitmproxy sets it
                addon.server_connected(data)
            else:
                addon.server_connect_error(data)
            out[host] = {"error": server.error, "connect_to": at_connect,
                         "after": list(server.address), "sni": server.sni}
        out["refused"] = dict(state.refused)
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_server_connect_pins_the_checked_address_and_keeps_the_name():
    python = CF_EGRESS.parent / "python"
    proc = subprocess.run(
        [str(python), "-c", HOOK_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    api = out["api.example.com"]
    assert api["error"] is None
    assert api["connect_to"] == ["93.184.216.34", 443]  # the socket goes where we checked
    assert api["after"] == ["api.example.com", 443]  # mitmproxy sees the name again
    assert api["sni"] == "api.example.com"
    assert "10.0.0.7" in out["internal.example.com"]["error"]
    assert out["pinned.example.com"]["connect_to"] == ["10.0.0.8", 443]
    # Listing a name exactly does not open the private address it points to.
    assert "10.0.0.9" in out["exact.example.com"]["error"]
    assert "not on the egress allowlist" in out["other.test"]["error"]
    assert out["refused"] == {
        "internal.example.com:443": 1,
        "exact.example.com:443": 1,
        "other.test:443": 1,
    }


def test_a_listed_name_reaches_the_server_only_through_the_checked_address(
    start_egress, http_server
):
    # mitmproxy cannot resolve api.rebind.test: a 200 means it connected to
    # the address the addon checked (127.0.0.1, listed for this port).
    eg = start_egress(
        ["*.rebind.test", f"127.0.0.1:{http_server.port}"],
        resolver={"api.rebind.test": ["127.0.0.1"]},
    )
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    status, body, _ = get_json(conn, f"http://api.rebind.test:{http_server.port}/in")
    assert status == 200
    assert body["host"] == f"api.rebind.test:{http_server.port}"  # Host keeps the name
    # The upstream connection is reused for the name (it got its name back).
    status, again, _ = get_json(conn, f"http://api.rebind.test:{http_server.port}/again")
    assert (status, again["peer_port"]) == (200, body["peer_port"])
    assert eg.stats()["refused_total"] == 0
    assert not [line for line in eg.stderr_lines if "Addon error" in line]


def test_a_listed_name_resolving_inside_is_refused_with_a_readable_error(
    start_egress, http_server, https_server
):
    eg = start_egress(
        ["*.rebind.test", "exact.rebind.test"],
        resolver={
            "api.rebind.test": ["127.0.0.1"],
            "exact.rebind.test": ["127.0.0.1"],
            "gone.rebind.test": [],
        },
    )
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    # The server is really there on 127.0.0.1: only the guard stops this.
    status, body, resp = get_json(conn, f"http://api.rebind.test:{http_server.port}/x")
    assert status == 403
    assert resp.headers["x-clawfactory-egress"] == "refused"
    assert body["error"] == "egress_refused"
    assert body["reason"] == "non_public_address"
    assert body["addresses"] == ["127.0.0.1"]
    assert "api.rebind.test resolves to 127.0.0.1" in body["message"]
    assert "cftui egress egbot --allow 127.0.0.1" in body["message"]

    status, body, sock = raw_connect(eg, "exact.rebind.test", https_server.port)
    sock.close()
    assert status == 403
    assert (body["via"], body["reason"]) == ("CONNECT", "non_public_address")

    status, body, resp = get_json(conn, f"http://gone.rebind.test:{http_server.port}/x")
    assert status == 502
    assert body["error"] == "egress_unresolved"
    assert "cannot resolve gone.rebind.test" in body["message"]

    stats = eg.wait_stats(lambda s: s["refused_total"] >= 2)
    assert stats["refused"] == {
        f"api.rebind.test:{http_server.port}": 1,
        f"exact.rebind.test:{https_server.port}": 1,
    }


def test_https_to_a_pinned_name_keeps_the_name_for_sni_and_verification(
    start_egress, named_https_server, test_ca_pem, home, cli
):
    """Tunnelled and intercepted alike, the server is asked for its name (its
    certificate has no IP), though the socket went to the checked address."""
    server = named_https_server
    server.host = "api.rebind.test"
    eg = start_egress(
        ["api.rebind.test", f"127.0.0.1:{server.port}"],
        resolver={"api.rebind.test": ["127.0.0.1"]},
    )
    tunnelled = https_via(eg, server, test_ca_pem)
    assert get_json(tunnelled, "/tunnelled")[0] == 200
    tunnelled.close()
    assert cli("capture", "on", "egbot").code == 0
    intercepted = https_via(eg, server, eg.ca_pem)
    status, body, _ = get_json(intercepted, "/intercepted")
    intercepted.close()
    assert (status, body["path"]) == (200, "/intercepted")
    assert server.snis == ["api.rebind.test", "api.rebind.test"]
    assert not [line for line in eg.stderr_lines if "Addon error" in line]
    eg.wait_stats(lambda s: s["flows_captured"] >= 1)
    (entry,) = CaptureReader(home, "egbot").page(5)
    assert entry.record["url"] == f"https://api.rebind.test:{server.port}/intercepted"


@pytest.mark.parametrize("capture", [False, True])
def test_the_ip_a_name_resolves_to_must_be_listed_for_its_port(
    start_egress, named_https_server, test_ca_pem, capture
):
    server = named_https_server
    server.host = "api.rebind.test"
    eg = start_egress(
        ["api.rebind.test", "127.0.0.1:1"],
        capture=capture,
        resolver={"api.rebind.test": ["127.0.0.1"]},
    )
    status, body, sock = raw_connect(eg, "api.rebind.test", server.port)
    sock.close()
    assert status == 403
    assert body["reason"] == "non_public_address"
    assert server.snis == []  # nothing reached the server
