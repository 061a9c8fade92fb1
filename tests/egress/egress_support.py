"""Clients for the egress tests: HTTP(S) through the proxy, CONNECT by hand."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CF_EGRESS = REPO / ".venv-egress" / "bin" / "cf-egress"
# Opens the second half of the test server's /stream response (see conftest).
STREAM_GATE = threading.Event()

# cf-egress with its resolver answering from a table (argv[1], JSON name ->
# addresses), other names from the system: DNS is the one part a test cannot
# run for real, and mitmproxy itself cannot resolve these names, so a request
# that arrives proves the proxy connected to the address it checked.
WITH_TABLE = """
import json, socket, sys
from cfproxies.egress import resolve
table, system = json.loads(sys.argv[1]), resolve.system_resolve
async def from_table(host, port):
    if host in table:
        if not table[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]
    return await system(host, port)
resolve.system_resolve = from_table
from cfproxies.egress.__main__ import main
sys.exit(main(sys.argv[2:]))
"""


def local(server) -> list[str]:
    """The patterns that reach a test server by name: the name, and the
    loopback address it resolves to (a name never opens a private address)."""
    return [f"localhost:{server.port}", f"127.0.0.1:{server.port}"]


def tls_context(cafile: Path) -> ssl.SSLContext:
    """A client context that trusts exactly one CA."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    return ctx


def https_via(eg, target, cafile: Path, sni: str | None = None) -> http.client.HTTPSConnection:
    """A keep-alive HTTPS connection through the proxy's CONNECT tunnel."""
    conn = http.client.HTTPSConnection(
        "127.0.0.1", eg.port, context=tls_context(cafile), timeout=10
    )
    conn.set_tunnel(sni or target.host, target.port)
    return conn


def get_json(conn: http.client.HTTPConnection, url: str, body: bytes | None = None, **headers: str):
    conn.request("POST" if body else "GET", url, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, json.loads(data) if data else None, resp


def raw_connect(eg, host: str, port: int) -> tuple[int, dict | None, socket.socket]:
    """Send CONNECT by hand; returns the status, any JSON body and the socket."""
    sock = socket.create_connection(("127.0.0.1", eg.port), timeout=10)
    sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    f = sock.makefile("rb")
    status_line = f.readline().decode()
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode().partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = json.loads(f.read(length)) if length else None
    return status, body, sock
