"""Capture with a real cf-egress: interception, encrypted records, toggling
mid-connection, and decryption by the operator only."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import ssl
import time
from pathlib import Path

import pytest
from pyrage import x25519

from cftui import age
from cftui.audit.capture import CaptureReader
from cftui.audit.events import read_events
from cftui.identity import age_keygen_text
from tests.egress.egress_support import STREAM_GATE, get_json, https_via, local


def _files_under(*roots: Path) -> list[Path]:
    out = []
    for root in roots:
        for dirpath, _, names in os.walk(root):
            out += [Path(dirpath) / n for n in names]
    return out


def test_capture_on_intercepts_with_the_bots_ca_and_writes_encrypted_records(
    start_egress, https_server, test_ca_pem, home, cli
):
    marker_req, marker_resp = secrets.token_hex(12), secrets.token_hex(12)
    eg = start_egress(local(https_server), capture=True)
    # The agent trusts the bot's CA (ca.pem), not the server's own CA.
    conn = https_via(eg, https_server, eg.ca_pem)
    status, body, _ = get_json(
        conn, "/v1/things?q=1", marker_req.encode(), **{"x-reply": marker_resp}
    )
    assert status == 200
    assert body["got"] == marker_req
    issuer = str(conn.sock.getpeercert()["issuer"])
    assert "mitmproxy" in issuer
    conn.close()
    with pytest.raises(ssl.SSLCertVerificationError):
        get_json(https_via(eg, https_server, test_ca_pem), "/")

    eg.wait_stats(lambda s: s["flows_captured"] >= 1)
    lines = eg.capture_lines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert set(line) == {"k", "t"}
    assert line["k"] == eg.stats()["key_id"]
    keys = (eg.audit / "capture.keys").read_text()
    assert line["k"] in keys
    assert oct((eg.audit / "traffic.enc.jsonl").stat().st_mode & 0o777) == "0o600"
    assert oct((eg.audit / "capture.keys").stat().st_mode & 0o777) == "0o600"

    r = cli("decrypt", "egbot", "--json")
    assert r.code == 0, r.err
    (record,) = [json.loads(x) for x in r.out.splitlines()]
    assert record["method"] == "POST"
    assert record["url"] == f"https://localhost:{https_server.port}/v1/things?q=1"
    assert record["status"] == 200
    assert record["request"]["body"] == marker_req
    assert ["x-reply", marker_resp] in record["request"]["headers"]
    assert json.loads(record["response"]["body"])["reply"] == marker_resp
    assert record["tls"] is True
    assert record["duration_ms"] >= record["ttfb_ms"] >= 0

    r = cli("decrypt", "egbot")
    assert r.code == 0
    assert "POST" in r.out and "/v1/things" in r.out and " 200 " in r.out

    # No plaintext anywhere on disk: not the audit dir, not the CA dirs, not the home.
    for path in _files_under(home.root, eg.confdir, eg.ca_export):
        data = path.read_bytes()
        assert marker_req.encode() not in data, path
        assert marker_resp.encode() not in data, path
    # The CA key stays in the confdir; only the public certificate was exported.
    assert b"PRIVATE KEY" in (eg.confdir / "mitmproxy-ca.pem").read_bytes()
    assert all(b"PRIVATE KEY" not in p.read_bytes() for p in _files_under(eg.ca_export))
    assert eg.ca_pem.read_bytes() in (eg.ca_export / "bundle.pem").read_bytes()


def test_plain_http_is_recorded_when_capture_is_on(start_egress, http_server, cli):
    eg = start_egress(local(http_server), capture=True)
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    assert get_json(conn, f"http://localhost:{http_server.port}/plain")[0] == 200
    assert get_json(conn, f"http://127.0.0.2:{http_server.port}/nope")[0] == 403
    eg.wait_stats(lambda s: s["flows_captured"] >= 2)
    r = cli("decrypt", "egbot", "--json", "--oldest-first")
    records = [json.loads(x) for x in r.out.splitlines()]
    assert [(x["url"].rsplit("/", 1)[1], x["status"]) for x in records] == [
        ("plain", 200),
        ("nope", 403),
    ]
    assert records[1]["refused"] is True
    assert records[0]["tls"] is False


def test_toggling_capture_mid_connection_keeps_open_connections(
    start_egress, https_server, test_ca_pem, home, cli
):
    eg = start_egress(local(https_server), capture=False)
    tunnelled = https_via(eg, https_server, test_ca_pem)
    assert get_json(tunnelled, "/before")[0] == 200
    sock_before = tunnelled.sock

    r = cli("capture", "on", "egbot")
    assert r.code == 0, r.err
    assert "applied by the running egress proxy" in r.out
    # The open tunnel carries on, on the same socket, still untouched.
    assert get_json(tunnelled, "/still-tunnelled")[0] == 200
    assert tunnelled.sock is sock_before
    # A new connection is intercepted and recorded.
    intercepted = https_via(eg, https_server, eg.ca_pem)
    assert get_json(intercepted, "/captured")[0] == 200
    eg.wait_stats(lambda s: s["flows_captured"] >= 1)

    r = cli("capture", "off", "egbot")
    assert r.code == 0, r.err
    sock_intercepted = intercepted.sock
    # The intercepted connection is not dropped; nothing more is written.
    assert get_json(intercepted, "/after-off")[0] == 200
    assert intercepted.sock is sock_intercepted
    assert get_json(https_via(eg, https_server, test_ca_pem), "/new-tunnel")[0] == 200
    assert eg.proc.poll() is None

    records = [e.record for e in CaptureReader(home, "egbot").iter_entries(newest_first=False)]
    assert [r["url"].rsplit("/", 1)[1] for r in records] == ["captured"]
    assert home.bot("egbot").capture is False
    events = [e for e in read_events(home, "egbot") if e["action"] == "capture"]
    assert [e["state"] for e in events] == ["on", "off"]
    assert all(e["applied"] is True for e in events)
    # Each capture session has its own key.
    on_again = cli("capture", "on", "egbot")
    assert on_again.code == 0
    keys = (eg.audit / "capture.keys").read_text().splitlines()
    assert len(keys) == 2
    assert len({json.loads(k)["k"] for k in keys}) == 2


def test_decrypt_with_the_wrong_identity_says_so_in_one_line(
    start_egress, http_server, tmp_path, cli
):
    eg = start_egress(local(http_server), capture=True)
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    assert get_json(conn, f"http://localhost:{http_server.port}/secret")[0] == 200
    eg.wait_stats(lambda s: s["flows_captured"] >= 1)
    other = tmp_path / "other.key"
    other.write_text(age_keygen_text(age.generate_identity()))
    r = cli("decrypt", "egbot", "--identity", str(other))
    assert r.code == 1
    assert r.out == ""
    assert len(r.err.strip().splitlines()) == 1
    assert "cannot open capture key" in r.err
    assert "Traceback" not in r.err


def test_websocket_messages_are_captured(start_egress, tmp_path, home):
    aiohttp = pytest.importorskip("aiohttp")
    import asyncio

    from aiohttp import web

    async def scenario() -> None:
        async def ws_handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                await ws.send_str("echo:" + msg.data)
            return ws

        app = web.Application()
        app.router.add_get("/ws", ws_handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        eg = await asyncio.to_thread(start_egress, [f"localhost:{port}", f"127.0.0.1:{port}"], True)
        try:
            async with (
                aiohttp.ClientSession() as s,
                s.ws_connect(
                    f"http://localhost:{port}/ws", proxy=f"http://127.0.0.1:{eg.port}"
                ) as ws,
            ):
                await ws.send_str("hello")
                assert (await ws.receive()).data == "echo:hello"
            await asyncio.to_thread(eg.wait_stats, lambda st: st["flows_captured"] >= 1)
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
    (entry,) = CaptureReader(home, "egbot").page(10)
    record = entry.record
    assert record["kind"] == "websocket"
    msgs = [(m["from_client"], m["body"]) for m in record["websocket"]["messages"]]
    assert msgs == [(True, "hello"), (False, "echo:hello")]


def test_capture_does_not_hold_back_a_streamed_response(start_egress, https_server, home):
    STREAM_GATE.clear()
    eg = start_egress(local(https_server), capture=True)
    conn = https_via(eg, https_server, eg.ca_pem)
    conn.request("GET", "/stream")
    resp = conn.getresponse()
    first = b""
    while b"data: first" not in first:
        more = resp.read1(65536)
        assert more, first
        first += more
    STREAM_GATE.set()  # the server sends the rest only once we saw the first event
    assert b"data: in-time" in resp.read()
    conn.close()
    eg.wait_stats(lambda s: s["flows_captured"] >= 1)
    (entry,) = CaptureReader(home, "egbot").page(5)
    body = entry.record["response"]["body"]
    assert "data: first" in body and "data: in-time" in body
    assert entry.record["streamed"] is True


def test_captured_bodies_are_capped(start_egress, http_server, home):
    eg = start_egress(local(http_server), capture=True, extra=["--body-cap", "1000"])
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    conn.request("GET", f"http://localhost:{http_server.port}/big/50000")
    resp = conn.getresponse()
    assert len(resp.read()) == 50000  # the agent gets it all
    eg.wait_stats(lambda s: s["flows_captured"] >= 1)
    (entry,) = CaptureReader(home, "egbot").page(5)
    recorded = entry.record["response"]
    assert recorded["truncated"] is True
    assert recorded["bytes"] == 50000
    assert len(recorded["body"]) == 1000


def test_a_bad_control_file_changes_nothing_and_the_proxy_keeps_running(
    start_egress, http_server, home
):
    from cftui.egress_control import control_path

    eg = start_egress(local(http_server), capture=False)
    for junk in (b"{not json", b'{"capture": "yes"}', b'{"allow": ["http://x/"]}'):
        control_path(home, "egbot").write_bytes(junk)
        deadline = time.monotonic() + 10
        while not any("ignoring the control file" in x for x in eg.stderr_lines[-3:]):
            assert time.monotonic() < deadline, eg.stderr_lines
            time.sleep(0.05)
        eg.stderr_lines.clear()
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    assert get_json(conn, f"http://localhost:{http_server.port}/ok")[0] == 200
    stats = eg.stats()
    assert stats["capture"] is False
    assert stats["allow"] == local(http_server)


def test_compressed_bodies_are_recorded_decoded_and_passed_on_as_sent(
    start_egress, http_server, home
):
    import gzip

    eg = start_egress(local(http_server), capture=True)
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    conn.request("GET", f"http://localhost:{http_server.port}/gzip")
    resp = conn.getresponse()
    assert resp.headers["content-encoding"] == "gzip"
    assert b"GZ-MARKER" in gzip.decompress(resp.read())
    eg.wait_stats(lambda s: s["flows_captured"] >= 1)
    (entry,) = CaptureReader(home, "egbot").page(5)
    assert json.loads(entry.record["response"]["body"]) == {"zipped": "GZ-MARKER"}
    assert entry.record["response"]["decoded_from"] == "gzip"


def test_the_session_key_reaches_disk_only_sealed_to_the_bots_identity(
    start_egress, http_server, home, tmp_path
):
    import base64
    import binascii

    from cryptography.fernet import Fernet
    from pyrage import decrypt as age_decrypt

    eg = start_egress(local(http_server), capture=True)
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    assert get_json(conn, f"http://localhost:{http_server.port}/sealed")[0] == 200
    eg.wait_stats(lambda s: s["flows_captured"] >= 1)
    (entry,) = [json.loads(x) for x in (eg.audit / "capture.keys").read_text().splitlines()]
    secret = next(
        line
        for line in home.snapshot_key("egbot").read_text().splitlines()
        if line.startswith("AGE-SECRET-KEY-")
    )
    key = age_decrypt(base64.b64decode(entry["age"]), [x25519.Identity.from_str(secret)])
    (line,) = eg.capture_lines()
    assert json.loads(Fernet(key).decrypt(json.loads(line)["t"]))["url"].endswith("/sealed")
    # The key opens the log, and is written nowhere in the clear, in any spelling.
    raw = base64.urlsafe_b64decode(key)
    spellings = [key, raw, binascii.hexlify(raw), base64.b64encode(raw)]
    for path in _files_under(home.root, eg.confdir, eg.ca_export, tmp_path):
        data = path.read_bytes()
        assert not any(s in data for s in spellings), path
    assert entry["recipient"] == str(x25519.Identity.from_str(secret).to_public())


def test_a_refused_response_is_recorded_with_its_body(start_egress, http_server, cli):
    """The 403 a refusal answers is made by the proxy, not streamed from a
    server: it was stored as `"bytes": 0` with no body (issue #22 item 4)."""
    eg = start_egress(local(http_server), capture=True)
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    sent = b'{"ask": "please"}'
    assert len(sent) == 17
    conn.request("POST", f"http://127.0.0.2:{http_server.port}/nope", body=sent)
    resp = conn.getresponse()
    answer = resp.read()
    assert resp.status == 403
    eg.wait_stats(lambda s: s["flows_captured"] >= 1)
    r = cli("decrypt", "egbot", "--json")
    (record,) = [json.loads(x) for x in r.out.splitlines()]
    assert record["refused"] is True and record["status"] == 403
    assert record["request"]["bytes"] == 17 and record["request"]["body"] == sent.decode()
    assert record["response"]["bytes"] == len(answer) == int(resp.getheader("content-length"))
    assert json.loads(record["response"]["body"])["error"] == "egress_refused"
    r = cli("decrypt", "egbot")
    assert " 403! " in r.out and f" {len(answer)} B " in r.out, r.out
