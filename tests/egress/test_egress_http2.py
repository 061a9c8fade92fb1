"""HTTP/2 through cf-egress: an h2-only server of the test's own (trustme
certificate) and an h2 client, both on the `h2` library in the egress venv."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from cftui.audit.capture import CaptureReader
from tests.egress.egress_support import CF_EGRESS, local

PYTHON = str(CF_EGRESS.parent / "python")
PEER = str(Path(__file__).with_name("h2_peer.py"))


class H2Server:
    host = "localhost"

    def __init__(self, port: int) -> None:
        self.port = port


@pytest.fixture
def h2_server(test_ca: trustme.CA, tmp_path: Path) -> Iterator[H2Server]:
    pem = tmp_path / "h2-server.pem"
    test_ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(pem)
    )
    proc = subprocess.Popen([PYTHON, PEER, "serve", str(pem)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield H2Server(int(proc.stdout.readline()))
    finally:
        proc.kill()
        proc.wait()


def _h2_get(eg, server: H2Server, ca: Path, requests: list[list[str]]) -> dict:
    args = [PYTHON, PEER, "get", str(eg.port), server.host, str(server.port), str(ca)]
    proc = subprocess.run([*args, json.dumps(requests)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_http2_flows_are_captured_and_decrypt_to_what_was_sent(start_egress, h2_server, home):
    sent, answered = secrets.token_hex(12), secrets.token_hex(12)
    eg = start_egress(local(h2_server), capture=True)
    # Two streams multiplexed on one connection, both sent before any answer.
    got = _h2_get(
        eg,
        h2_server,
        eg.ca_pem,
        [["POST", "/h2/one?x=1", sent, answered], ["GET", "/h2/two", "", "second"]],
    )
    assert got["alpn"] == "h2"
    assert [a["status"] for a in got["answers"]] == [201, 201]
    assert got["answers"][0]["body"]["got"] == sent

    eg.wait_stats(lambda s: s["flows_captured"] >= 2)
    records = sorted(
        (e.record for e in CaptureReader(home, "egbot").iter_entries()), key=lambda r: r["url"]
    )
    base = f"https://localhost:{h2_server.port}"
    assert [(r["method"], r["url"], r["status"]) for r in records] == [
        ("POST", f"{base}/h2/one?x=1", 201),
        ("GET", f"{base}/h2/two", 201),
    ]
    one = records[0]
    assert one["tls"] is True
    assert one["http_version"] == one["response"]["http_version"] == "HTTP/2.0"
    assert one["server"] == ["127.0.0.1", h2_server.port]
    assert one["request"]["body"] == sent
    assert ["x-marker", answered] in one["request"]["headers"]
    reply = json.loads(one["response"]["body"])
    assert (reply["method"], reply["path"], reply["reply"]) == ("POST", "/h2/one?x=1", answered)
    assert json.loads(records[1]["response"]["body"])["reply"] == "second"
    for dirpath, _, names in os.walk(home.root):
        for n in names:
            data = (Path(dirpath) / n).read_bytes()
            assert sent.encode() not in data and answered.encode() not in data


def test_http2_is_tunnelled_untouched_when_capture_is_off(start_egress, h2_server, test_ca_pem):
    eg = start_egress(local(h2_server), capture=False)
    got = _h2_get(eg, h2_server, test_ca_pem, [["GET", "/h2/tunnel", "", "t"]])
    assert got["alpn"] == "h2"
    assert got["answers"][0]["status"] == 201
    assert eg.capture_lines() == []


def test_http2_stream_for_an_unlisted_authority_is_refused_on_its_own(
    start_egress, h2_server, home
):
    """Connection reuse for another name (h2 coalescing) is checked per stream."""
    eg = start_egress(local(h2_server), capture=True)
    got = _h2_get(
        eg,
        h2_server,
        eg.ca_pem,
        [
            ["GET", "/h2/elsewhere", "", "x", f"evil.example:{h2_server.port}"],
            ["GET", "/h2/here", "", "y"],
        ],
    )
    refused, allowed = got["answers"]
    assert refused["status"] == 403
    assert refused["body"]["error"] == "egress_refused"
    assert refused["body"]["host"] == "evil.example"
    assert (allowed["status"], allowed["body"]["path"]) == (201, "/h2/here")
    stats = eg.wait_stats(lambda s: s["flows_captured"] >= 2)
    assert stats["refused"] == {f"evil.example:{h2_server.port}": 1}
    records = {
        e.record["url"].rsplit("/", 1)[1]: e.record
        for e in CaptureReader(home, "egbot").iter_entries()
    }
    assert records["elsewhere"]["refused"] is True
    assert records["here"]["status"] == 201
