"""`/metrics` on the egress proxy (issue #23): allowed and refused counts by
host, read with prometheus_client's parser, from a real cf-egress."""

from __future__ import annotations

import http.client

from prometheus_client.parser import text_string_to_metric_families

from tests.egress.egress_support import get_json, https_via, local, raw_connect


def scrape(eg, host: str = "127.0.0.1") -> dict[str, list]:
    """/metrics asked of the proxy itself, as a scraper does (origin form)."""
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    conn.request("GET", "/metrics", headers={"Host": f"{host}:{eg.port}"})
    resp = conn.getresponse()
    text = resp.read().decode()
    assert resp.status == 200, text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        out[family.name] = [(s.labels, s.value) for s in family.samples]
    return out


def count(samples, **labels) -> float:
    return sum(v for lab, v in samples if all(lab.get(k) == x for k, x in labels.items()))


def test_metrics_count_an_allowed_and_a_refused_request_by_host(
    start_egress, http_server, https_server, test_ca_pem
):
    eg = start_egress([*local(http_server), *local(https_server)])
    before = scrape(eg)
    assert count(before["cf_egress_allowed"]) == count(before["cf_egress_refused"]) == 0
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    status, _, _ = get_json(conn, f"http://localhost:{http_server.port}/ok")
    assert status == 200
    status, _, sock = raw_connect(eg, "evil.example", 443)
    sock.close()
    assert status == 403
    status, _, _ = get_json(conn, "http://evil.example/x")
    assert status == 403
    tls = https_via(eg, https_server, test_ca_pem)  # capture off: tunnelled as it is
    status, _, _ = get_json(tls, "/tunnelled")
    assert status == 200

    m = scrape(eg)
    allowed, refused = m["cf_egress_allowed"], m["cf_egress_refused"]
    assert count(allowed, host="localhost", port=str(http_server.port), via="HTTP") == 1
    assert count(allowed, host="localhost", port=str(https_server.port), via="CONNECT") == 1
    assert count(refused, host="evil.example", port="443", via="CONNECT") == 1
    assert count(refused, host="evil.example", port="80", via="HTTP") == 1
    assert count(refused) == 2
    assert all(lab["bot"] == eg.bot for lab, _ in allowed + refused)
    assert count(m["cf_egress_capture_on"]) == 0


def test_metrics_by_the_proxys_name_and_absolute_form(start_egress):
    eg = start_egress(["localhost"])
    assert "cf_egress_refused" in scrape(eg, host="localhost")
    # A proxy request for the proxy's own address is the proxy's page too.
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    conn.request("GET", f"http://127.0.0.1:{eg.port}/metrics")
    resp = conn.getresponse()
    assert resp.status == 200 and b"cf_egress_allowed_total" in resp.read()


def test_metrics_elsewhere_is_a_destination_like_any_other(start_egress, http_server):
    """/metrics of another host or port is the agent's request: allowlisted
    or refused, never answered with the proxy's own numbers."""
    eg = start_egress(local(http_server))
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    status, body, _ = get_json(conn, f"http://localhost:{http_server.port}/metrics")
    assert status == 200 and body["path"] == "/metrics"  # the test server's answer
    status, body, _ = get_json(conn, "http://evil.example:80/metrics")
    assert status == 403 and body["error"] == "egress_refused"


def test_the_hosts_an_agent_tries_are_bounded_in_the_page(start_egress):
    """The agent names the hosts: past MAX_SERIES they count as `_other`
    (escaping is tested on the shared exposition, tests/proxies/test_metrics)."""
    eg = start_egress(["localhost"])
    for i in range(250):
        status, _, sock = raw_connect(eg, f"e{i}.example", 443)
        sock.close()
        assert status == 403
    m = scrape(eg)
    hosts = {lab["host"] for lab, _ in m["cf_egress_refused"]}
    assert len(hosts) <= 201 and "_other" in hosts
    assert count(m["cf_egress_refused"]) == 250
