"""The last gate before a socket opens (the allowlist addon's `server_connect`),
run in the egress venv with mitmproxy's own connection objects. DNS is the one
thing we cannot reach from a test, so the resolver answers from a table."""

from __future__ import annotations

import json
import subprocess
import textwrap

from egress_support import CF_EGRESS

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from mitmproxy import connection
    from mitmproxy.proxy.server_hooks import ServerConnectionHookData
    from cfproxies.egress.allowlist import Allowlist
    from cfproxies.egress.config import EgressConfig
    from cfproxies.egress.patterns import Allowlist as Patterns
    from cfproxies.egress.state import EgressState

    TABLE = {
        "api.example.com": "93.184.216.34",
        "internal.example.com": "10.0.0.7",
        "meta.example.com": "169.254.169.254",
        "pinned.example.com": "10.0.0.8",
    }

    async def main():
        loop = asyncio.get_running_loop()

        async def fake_getaddrinfo(host, port, **kw):
            return [(2, 1, 6, "", (TABLE[host], port))]

        loop.getaddrinfo = fake_getaddrinfo
        cfg = EgressConfig("127.0.0.1", 0, "b", Path("."), Path("."), "age1x", False, (),
                           None, None, None, 1, 1)
        state = EgressState(cfg, Patterns.parse(["*.example.com", "pinned.example.com"]))
        addon = Allowlist(state)
        out = {}
        for host in ["api.example.com", "internal.example.com", "meta.example.com",
                     "pinned.example.com", "other.test"]:
            server = connection.Server(address=(host, 443))
            client = connection.Client(peername=("127.0.0.1", 1), sockname=("127.0.0.1", 2))
            await addon.server_connect(ServerConnectionHookData(server=server, client=client))
            out[host] = server.error
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_wildcard_hosts_must_resolve_to_public_addresses():
    python = CF_EGRESS.parent / "python"
    proc = subprocess.run([str(python), "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    errors = json.loads(proc.stdout.strip().splitlines()[-1])
    assert errors["api.example.com"] is None
    assert "non-public address (10.0.0.7)" in errors["internal.example.com"]
    assert "169.254.169.254" in errors["meta.example.com"]
    assert errors["pinned.example.com"] is None  # listed exactly: the operator meant it
    assert "not on the egress allowlist" in errors["other.test"]
