"""Rules by method and path, and the ledger of refused requests, with a real
cf-egress (mitmproxy) and servers of the test's own on loopback."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from tests.egress.egress_support import get_json, https_via, raw_connect, tls_context
from tests.egress.test_egress_http2 import _h2_get, h2_server  # noqa: F401  (a fixture)

LEDGER = "egress.requests.json"


def rules(server, rule: str) -> list[str]:
    """The server's name and address, both narrowed by `rule` (`METHODS PREFIXES`)."""
    return [f"localhost:{server.port} {rule}", f"127.0.0.1:{server.port} {rule}"]


def ledger(eg) -> dict:
    return json.loads((eg.audit / LEDGER).read_text())


def wait_ledger(eg, pred, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        try:
            last = ledger(eg)
        except (OSError, ValueError):
            last = {}
        if last and pred(last):
            return last
        time.sleep(0.05)
    raise AssertionError(f"the ledger never matched: {last}")


def entry(doc: dict, key: str) -> dict | None:
    return next((e for e in doc["requests"] if e["key"] == key), None)


def count_of(key: str, n: int):
    return lambda doc: (e := entry(doc, key)) is not None and e["count"] == n


def raw_http(eg, data: bytes) -> bytes:
    """Send bytes to the proxy as they are; the whole answer (the proxy closes)."""
    with socket.create_connection(("127.0.0.1", eg.port), timeout=10) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
            if b"\r\n\r\n" in reply and b"content-length" in reply.lower():
                head, _, body = reply.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
        return reply


def test_an_unlisted_host_is_in_the_ledger_counted_each_time(start_egress):
    eg = start_egress(["localhost"])
    for n in (1, 2):
        status, _, sock = raw_connect(eg, "evil.example", 443)
        sock.close()
        assert status == 403
        doc = wait_ledger(eg, count_of("evil.example:443", n))
    e = entry(doc, "evil.example:443")
    assert e is not None
    assert (e["host"], e["port"], e["connect"]) == ("evil.example", 443, True)
    assert (e["method"], e["path"], e["rule"]) == (None, None, None)
    assert e["suggest"] == "evil.example:443"
    assert e["first"] <= e["last"] and e["last"].endswith("Z")
    assert (doc["v"], doc["bot"], doc["dropped"]) == (1, "egbot", 0)
    assert oct((eg.audit / LEDGER).stat().st_mode & 0o777) == "0o600"


def test_plain_http_to_an_unlisted_host_records_its_method_and_path(start_egress, http_server):
    eg = start_egress([f"localhost:{http_server.port}"])
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    status, _, _ = get_json(conn, f"http://127.0.0.1:{http_server.port}/v1/x?token=secret")
    assert status == 403
    key = f"127.0.0.1:{http_server.port}"
    e = entry(wait_ledger(eg, count_of(key, 1)), key)
    assert e is not None
    assert (e["connect"], e["method"], e["path"]) == (False, "GET", "/v1/x")  # no query
    assert e["suggest"] == key


def test_a_rule_admits_its_method_and_path_over_https_with_capture_off(
    start_egress, https_server, home
):
    eg = start_egress(rules(https_server, "GET /ok/"), capture=False)
    rule = f"localhost:{https_server.port} GET /ok/"
    # The host is inspected: the agent sees the capture CA's certificate.
    conn = https_via(eg, https_server, eg.ca_pem)
    status, body, _ = get_json(conn, "/ok/x")
    assert (status, body["path"], body["method"]) == (200, "/ok/x", "GET")
    status, body, resp = get_json(conn, "/ok/x", body=b'{"write": 1}')
    assert status == 403
    assert resp.headers["x-clawfactory-egress"] == "refused"
    assert (body["error"], body["reason"], body["rule"]) == ("egress_refused", "rule", rule)
    assert body["method"] == "POST"
    suggest = f"localhost:{https_server.port} POST /ok/"
    assert body["suggest"] == suggest
    assert f"cftui egress egbot --allow '{suggest}'" in body["message"]
    status, body, _ = get_json(conn, "/other")
    assert (status, body["rule"]) == (403, rule)
    conn.close()
    assert eg.capture_lines() == []  # inspected, not recorded

    key = f"localhost:{https_server.port} POST /ok/"
    doc = wait_ledger(
        eg, lambda d: entry(d, key) and entry(d, f"localhost:{https_server.port} GET /")
    )
    e = entry(doc, key)
    assert e is not None
    assert (e["method"], e["path"], e["rule"], e["connect"]) == ("POST", "/ok/x", rule, True)
    assert e["suggest"] == suggest


def test_a_suggested_rule_allowed_live_lets_the_next_request_through(
    start_egress, https_server, cli
):
    eg = start_egress(rules(https_server, "GET /ok/"))
    conn = https_via(eg, https_server, eg.ca_pem)
    assert get_json(conn, "/ok/x", body=b"1")[0] == 403
    key = f"localhost:{https_server.port} POST /ok/"
    suggest = entry(wait_ledger(eg, count_of(key, 1)), key)["suggest"]  # type: ignore[index]
    r = cli("egress", "egbot", "--allow", suggest)
    assert r.code == 0, r.err
    assert "applied by the running egress proxy" in r.out
    conn.close()
    conn = https_via(eg, https_server, eg.ca_pem)  # a new connection: new rules
    status, body, _ = get_json(conn, "/ok/x", body=b"1")
    assert (status, body["method"], body["got"]) == (200, "POST", "1")
    assert get_json(conn, "/ok/", body=b"2")[0] == 200
    assert get_json(conn, "/elsewhere", body=b"3")[0] == 403
    assert eg.proc.poll() is None


def test_rules_check_each_http2_stream(start_egress, h2_server):  # noqa: F811
    eg = start_egress(rules(h2_server, "GET /ok/"), capture=False)
    got = _h2_get(
        eg,
        h2_server,
        eg.ca_pem,
        [["GET", "/ok/x", "", "a"], ["POST", "/ok/x", "body", "b"], ["GET", "/other", "", "c"]],
    )
    assert got["alpn"] == "h2"
    ok, post, other = got["answers"]
    assert (ok["status"], ok["body"]["path"]) == (201, "/ok/x")
    rule = f"localhost:{h2_server.port} GET /ok/"
    assert (post["status"], post["body"]["rule"], post["body"]["method"]) == (403, rule, "POST")
    assert (other["status"], other["body"]["rule"]) == (403, rule)
    assert eg.capture_lines() == []
    key = f"localhost:{h2_server.port} POST /ok/"
    e = entry(wait_ledger(eg, count_of(key, 1)), key)
    assert e is not None and e["suggest"] == key


def test_a_plain_host_entry_beside_a_rule_keeps_the_tunnel(start_egress, https_server, test_ca_pem):
    """Entries for one host combine: a plain one admits everything, untouched."""
    eg = start_egress([*rules(https_server, "GET /ok/"), f"localhost:{https_server.port}"])
    conn = https_via(eg, https_server, test_ca_pem)  # the server's own certificate
    assert get_json(conn, "/other", body=b"x")[0] == 200


def test_several_rules_for_one_host_combine(start_egress, http_server):
    eg = start_egress([*rules(http_server, "GET /a/"), *rules(http_server, "POST /b/ /c/")])
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    base = f"http://localhost:{http_server.port}"
    assert get_json(conn, f"{base}/a/1")[0] == 200
    assert get_json(conn, f"{base}/c/1", body=b"x")[0] == 200
    status, body, _ = get_json(conn, f"{base}/a/1", body=b"x")
    assert status == 403
    assert body["rules"] == [
        f"localhost:{http_server.port} GET /a/",
        f"localhost:{http_server.port} POST /b/ /c/",
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/ok/../admin",
        "/ok/%2e%2e/admin",
        "/ok/%2E%2e%2fadmin",
        "/ok/..;/admin",
        "/ok/%252e%252e/admin",
        "/ok/..\\admin",
        "/ok/%zz",
    ],
)
def test_a_path_with_dot_segments_passes_no_rule(start_egress, http_server, path):
    eg = start_egress(rules(http_server, "GET /ok/"))
    reply = raw_http(
        eg,
        f"GET http://localhost:{http_server.port}{path} HTTP/1.1\r\n"
        f"Host: localhost:{http_server.port}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert reply.startswith(b"HTTP/1.1 403"), reply[:200]
    body = json.loads(reply.partition(b"\r\n\r\n")[2])
    assert body["suggest"] is None  # no rule may admit it
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    # An escaped unreserved character is the character: still under /ok/.
    status, body, _ = get_json(conn, f"http://localhost:{http_server.port}/ok/%7Eme")
    assert (status, body["path"]) == (200, "/ok/%7Eme")


def test_a_method_override_header_is_checked_as_the_method_it_names(start_egress, http_server):
    eg = start_egress(rules(http_server, "GET /ok/"))
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    url = f"http://localhost:{http_server.port}/ok/x"
    status, body, _ = get_json(conn, url, **{"X-HTTP-Method-Override": "DELETE"})
    assert (status, body["method"]) == (403, "DELETE")
    assert body["suggest"] == f"localhost:{http_server.port} DELETE /ok/"
    assert get_json(conn, url, **{"X-HTTP-Method-Override": "get"})[0] == 200


def test_a_websocket_upgrade_is_checked_as_its_get(start_egress, http_server):
    eg = start_egress(rules(http_server, "GET /ok/"))
    upgrade = (
        f"Host: localhost:{http_server.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    reply = raw_http(
        eg, f"GET http://localhost:{http_server.port}/ws HTTP/1.1\r\n{upgrade}".encode()
    )
    assert reply.startswith(b"HTTP/1.1 403")
    key = f"localhost:{http_server.port} GET /"
    e = entry(wait_ledger(eg, count_of(key, 1)), key)
    assert e is not None and e["path"] == "/ws"


def test_raw_tcp_to_a_host_under_rules_is_cut_off(start_egress, https_server):
    eg = start_egress(rules(https_server, "GET /ok/"))
    status, _, sock = raw_connect(eg, "localhost", https_server.port)
    assert status == 200
    sock.sendall(b"\x00\x01binary, not HTTP and not TLS\r\n")
    sock.settimeout(10)
    assert sock.recv(65536) == b""  # closed, nothing relayed
    sock.close()
    key = f"localhost:{https_server.port}"
    e = entry(wait_ledger(eg, count_of(key, 1)), key)
    assert e is not None
    assert e["rule"] == f"localhost:{https_server.port} GET /ok/"
    assert e["suggest"] == key


def test_a_refused_request_announcing_a_huge_body_is_cut_off_unread(start_egress, http_server):
    eg = start_egress(rules(http_server, "GET /ok/"))
    with socket.create_connection(("127.0.0.1", eg.port), timeout=10) as sock:
        sock.sendall(
            f"POST http://localhost:{http_server.port}/ok/x HTTP/1.1\r\n"
            f"Host: localhost:{http_server.port}\r\nContent-Length: {64 * 1024 * 1024}\r\n\r\n".encode()
            + b"x" * 1024
        )
        assert sock.recv(65536) == b""
    key = f"localhost:{http_server.port} POST /ok/"
    assert entry(wait_ledger(eg, count_of(key, 1)), key) is not None


# --- the agent's text, hostile ---------------------------------------------------


def test_a_huge_hostname_and_path_are_bounded_in_the_ledger(start_egress, http_server):
    eg = start_egress(rules(http_server, "GET /ok/"))
    host = "a" * 10_000 + ".example"
    reply = raw_http(
        eg, f"GET http://{host}/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    )
    assert reply.startswith(b"HTTP/1.1 4"), reply[:200]
    path = "/ok/" + "p" * 10_000
    reply = raw_http(
        eg,
        f"POST http://localhost:{http_server.port}{path} HTTP/1.1\r\n"
        f"Host: localhost:{http_server.port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode(),
    )
    assert reply.startswith(b"HTTP/1.1 403")
    doc = wait_ledger(eg, lambda d: any(e["method"] == "POST" for e in d["requests"]))
    for e in doc["requests"]:
        assert len(e["host"]) <= 255
        assert e["path"] is None or len(e["path"]) <= 512
        assert len(e["key"]) <= 2048
    (post,) = [e for e in doc["requests"] if e["method"] == "POST"]
    assert post["suggest"] is not None  # a prefix cut back to fit, still admitting it
    assert len(post["suggest"].split(" ", 2)[2]) <= 512
    assert not [line for line in eg.stderr_lines if "Traceback" in line]


def test_a_non_utf8_path_is_refused_and_recorded_escaped(start_egress, http_server):
    eg = start_egress(rules(http_server, "GET /ok/"))
    status, _, sock = raw_connect(eg, "localhost", http_server.port)  # origin-form inside
    assert status == 200
    sock.sendall(
        b"POST /ok/\xff\xfe/%1b[31m HTTP/1.1\r\n"
        + f"Host: localhost:{http_server.port}\r\nContent-Length: 0\r\n\r\n".encode()
    )
    reply = sock.recv(65536)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 403"), reply[:300]
    doc = wait_ledger(eg, lambda d: any(e["method"] == "POST" for e in d["requests"]))
    (post,) = [e for e in doc["requests"] if e["method"] == "POST"]
    assert post["path"] == "/ok/%FF%FE/%1b[31m"
    assert post["path"].isascii() and post["path"].isprintable()
    assert post["suggest"] == f"localhost:{http_server.port} POST /ok/%FF%FE/"


def test_a_corrupt_ledger_at_start_is_said_once_and_started_afresh(start_egress, home, bot):
    audit = home.audit_dir(bot)
    audit.mkdir(parents=True, exist_ok=True)
    (audit / LEDGER).write_bytes(b'{"v": 1, "requests": [{"key": ')
    eg = start_egress(["localhost"])
    deadline = time.monotonic() + 10
    while not any("fresh request ledger" in line for line in eg.stderr_lines):
        assert time.monotonic() < deadline, eg.stderr_lines
        time.sleep(0.05)
    assert len([line for line in eg.stderr_lines if "ledger" in line]) == 1
    status, _, sock = raw_connect(eg, "evil.example", 443)
    sock.close()
    assert status == 403
    doc = wait_ledger(eg, count_of("evil.example:443", 1))
    assert len(doc["requests"]) == 1


def test_bad_entries_in_the_ledger_are_skipped_and_good_ones_kept(start_egress, home, bot):
    audit = home.audit_dir(bot)
    audit.mkdir(parents=True, exist_ok=True)
    good = {
        "key": "kept.example:443",
        "host": "kept.example",
        "port": 443,
        "connect": True,
        "count": 7,
        "first": "2026-12-01T00:00:00.000Z",
        "last": "2026-12-01T00:00:01.000Z",
        "method": None,
        "path": None,
        "rule": None,
        "suggest": "kept.example:443",
    }
    bad = [{**good, "count": "7"}, {**good, "host": ["x"]}, "junk", {**good, "port": 10**6}]
    (audit / LEDGER).write_text(
        json.dumps({"v": 1, "bot": bot, "dropped": 3, "requests": [*bad, good]})
    )
    eg = start_egress(["localhost"])
    status, _, sock = raw_connect(eg, "kept.example", 443)
    sock.close()
    assert status == 403
    doc = wait_ledger(eg, count_of("kept.example:443", 8))
    assert doc["dropped"] == 3 and len(doc["requests"]) == 1
    assert any("skipped 4 bad entries" in line for line in eg.stderr_lines)


def test_the_ledger_survives_a_restart(start_egress):
    eg = start_egress(["localhost"])
    raw_connect(eg, "evil.example", 443)[2].close()
    wait_ledger(eg, count_of("evil.example:443", 1))
    eg.proc.terminate()
    assert eg.proc.wait(15) == 0
    eg2 = start_egress(["localhost"])
    raw_connect(eg2, "evil.example", 443)[2].close()
    wait_ledger(eg2, count_of("evil.example:443", 2))


def test_a_refused_sni_is_one_attempt_with_the_request_inside(start_egress, https_server):
    eg = start_egress([f"localhost:{https_server.port}", f"127.0.0.1:{https_server.port}"])
    status, _, sock = raw_connect(eg, "localhost", https_server.port)
    assert status == 200
    tls = tls_context(eg.ca_pem).wrap_socket(sock, server_hostname="evil.example")
    tls.sendall(b"GET /sni HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    reply = b""
    while chunk := tls.recv(65536):
        reply += chunk
    tls.close()
    assert reply.startswith(b"HTTP/1.1 403")
    key = f"evil.example:{https_server.port}"
    e = entry(wait_ledger(eg, count_of(key, 1)), key)
    assert e is not None and (e["connect"], e["method"], e["path"]) == (True, "GET", "/sni")
    time.sleep(0.8)  # the connection's end adds nothing more
    assert entry(ledger(eg), key)["count"] == 1  # type: ignore[index]
