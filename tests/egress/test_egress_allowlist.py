"""The allowlist on every way in, with a real cf-egress and real servers."""

from __future__ import annotations

import http.client
import json
import ssl

import pytest

from tests.egress.egress_support import get_json, https_via, local, raw_connect, tls_context


def test_plain_http_to_an_allowed_host_goes_through(start_egress, http_server):
    eg = start_egress(local(http_server))
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    status, body, _ = get_json(conn, f"http://localhost:{http_server.port}/hello")
    assert status == 200
    assert body["path"] == "/hello"


def test_plain_http_to_an_unlisted_host_is_refused_with_a_readable_error(start_egress, http_server):
    eg = start_egress([f"localhost:{http_server.port}"])
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    # Same server, reached by IP literal: not listed, so refused.
    status, body, resp = get_json(conn, f"http://127.0.0.1:{http_server.port}/x")
    assert status == 403
    assert resp.headers["x-clawfactory-egress"] == "refused"
    assert body["error"] == "egress_refused"
    assert body["host"] == "127.0.0.1"
    assert "cftui egress egbot --allow 127.0.0.1" in body["message"]
    stats = eg.wait_stats(lambda s: s["refused_total"] >= 1)
    assert stats["refused"] == {f"127.0.0.1:{http_server.port}": 1}


def test_a_listed_host_on_another_port_is_refused(start_egress, http_server, https_server):
    eg = start_egress([f"localhost:{http_server.port}"])
    status, body, sock = raw_connect(eg, "localhost", https_server.port)
    sock.close()
    assert status == 403
    assert body["port"] == https_server.port


def test_connect_to_an_unlisted_host_is_refused_before_any_connection(start_egress):
    eg = start_egress(["localhost"])
    status, body, sock = raw_connect(eg, "evil.example", 443)
    sock.close()
    assert status == 403
    assert body["host"] == "evil.example"
    assert body["via"] == "CONNECT"
    stats = eg.wait_stats(lambda s: s["refused_total"] >= 1)
    assert stats["refused"] == {"evil.example:443": 1}


def test_private_ip_literal_is_refused_unless_listed(start_egress, http_server):
    eg = start_egress(["localhost", f"127.0.0.1:{http_server.port}"])
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    status, _, _ = get_json(conn, f"http://127.0.0.1:{http_server.port}/listed")
    assert status == 200
    status, body, _ = get_json(conn, "http://10.0.0.1/")
    assert status == 403
    assert body["host"] == "10.0.0.1"
    for url, host in (
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        (f"http://[::1]:{http_server.port}/", "::1"),
        ("http://2130706433:1/", "2130706433"),  # 127.0.0.1, listed for another port
    ):
        status, body, _ = get_json(conn, url)
        assert (status, body["host"]) == (403, host), url
    # ... and on the listed port, the same address in another spelling is listed.
    assert get_json(conn, f"http://2130706433:{http_server.port}/")[0] == 200
    status, body, sock = raw_connect(eg, "[::1]", http_server.port)
    sock.close()
    assert (status, body["host"], body["via"]) == (403, "::1", "CONNECT")


@pytest.mark.parametrize("capture", [False, True])
def test_tls_sni_naming_an_unlisted_host_is_refused_inside_the_tunnel(
    start_egress, https_server, capture
):
    """A CONNECT to a listed host that asks TLS for another name (domain fronting)."""
    eg = start_egress(local(https_server), capture=capture)
    status, _, sock = raw_connect(eg, "localhost", https_server.port)
    assert status == 200
    tls = tls_context(eg.ca_pem).wrap_socket(sock, server_hostname="evil.example")
    tls.sendall(b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    reply = b""
    while chunk := tls.recv(65536):
        reply += chunk
    tls.close()
    assert reply.startswith(b"HTTP/1.1 403")
    assert b"evil.example" in reply
    stats = eg.wait_stats(lambda s: s["refused_total"] >= 1)
    assert "evil.example" in ",".join(stats["refused"])


def test_https_to_an_allowed_host_is_tunnelled_untouched_when_capture_is_off(
    start_egress, https_server, test_ca_pem
):
    eg = start_egress(local(https_server), capture=False)
    # Trusting only the test CA works: the agent sees the server's own certificate.
    conn = https_via(eg, https_server, test_ca_pem)
    status, body, _ = get_json(conn, "/tunnel")
    assert status == 200
    assert body["path"] == "/tunnel"
    issuer = dict(x[0] for x in conn.sock.getpeercert()["issuer"])
    assert "mitmproxy" not in str(issuer)
    conn.close()
    # ... and trusting only the proxy's CA does not: nothing was intercepted.
    conn = https_via(eg, https_server, eg.ca_pem)
    with pytest.raises(ssl.SSLCertVerificationError):
        get_json(conn, "/tunnel")
    assert eg.capture_lines() == []


def test_allowlist_changes_apply_without_a_restart(start_egress, http_server, cli):
    eg = start_egress(["localhost:1"])
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    assert get_json(conn, f"http://localhost:{http_server.port}/a")[0] == 403
    r = cli("egress", "egbot", *[a for p in local(http_server) for a in ("--allow", p)])
    assert r.code == 0, r.err
    assert "applied by the running egress proxy" in r.out
    assert get_json(conn, f"http://localhost:{http_server.port}/b")[0] == 200
    r = cli("egress", "egbot", "--remove", f"localhost:{http_server.port}")
    assert r.code == 0, r.err
    assert get_json(conn, f"http://localhost:{http_server.port}/c")[0] == 403
    assert eg.proc.poll() is None


@pytest.mark.parametrize("capture", [False, True])
def test_plain_http_inside_a_connect_tunnel_is_checked_by_its_host(
    start_egress, http_server, capture
):
    """A CONNECT to a listed host, then plain HTTP for another Host inside it."""
    eg = start_egress(local(http_server), capture=capture)
    status, _, sock = raw_connect(eg, "localhost", http_server.port)
    assert status == 200
    f = sock.makefile("rwb")
    for host, expected in (("evil.example", b"HTTP/1.1 403"), ("localhost", b"HTTP/1.1 200")):
        f.write(f"GET /in-tunnel HTTP/1.1\r\nHost: {host}:{http_server.port}\r\n\r\n".encode())
        f.flush()
        head = f.readline()
        length = 0
        while (line := f.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = json.loads(f.read(length))
        assert head.startswith(expected), (host, head, body)
        if expected.endswith(b"403"):
            assert body["host"] == "evil.example"
            assert "cftui egress egbot --allow evil.example" in body["message"]
        else:
            assert body["path"] == "/in-tunnel"
    sock.close()
    assert eg.wait_stats(lambda s: s["refused_total"] == 1)["refused"] == {
        f"evil.example:{http_server.port}": 1
    }
