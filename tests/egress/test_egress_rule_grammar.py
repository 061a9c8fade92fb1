"""The allowlist grammar's rules (methods, path prefixes), the path normal
form they compare, the entries they suggest, and the request ledger's
bounds: pure code, shared by cftui and the proxy."""

from __future__ import annotations

import json
import os

import pytest
from cfproxies.egress.ledger import RequestLedger
from cfproxies.egress.patterns import (
    Allowlist,
    PatternError,
    normalise_path,
    normalise_patterns,
    parse_pattern,
    suggest_prefix,
)


@pytest.mark.parametrize(
    ("text", "canonical", "methods", "prefixes"),
    [
        (
            "api.github.com GET,HEAD /repos/acme/",
            "api.github.com GET,HEAD /repos/acme/",
            {"GET", "HEAD"},
            ("/repos/acme/",),
        ),
        ("api.github.com get,Get /a /a /b/", "api.github.com GET /a /b/", {"GET"}, ("/a", "/b/")),
        ("api.github.com * /x/%7e%41/", "api.github.com /x/~A/", None, ("/x/~A/",)),
        ("api.github.com /x/%2f/", "api.github.com /x/%2F/", None, ("/x/%2F/",)),
        ("[2001:db8::1]:443 POST", "[2001:db8::1]:443 POST", {"POST"}, ()),
        ("10.0.0.0/8 DELETE /v1/", "10.0.0.0/8 DELETE /v1/", {"DELETE"}, ("/v1/",)),
    ],
)
def test_rules_parse_to_one_canonical_text(text, canonical, methods, prefixes):
    p = parse_pattern(text)
    assert p.text == canonical and p.narrow
    assert (set(p.methods) if p.methods is not None else None) == methods
    assert p.prefixes == prefixes
    assert normalise_patterns([canonical]) == [canonical]  # a fixed point


def test_a_host_with_any_method_and_no_prefix_is_the_plain_entry():
    assert parse_pattern("api.example.com *").text == "api.example.com"
    assert not parse_pattern("api.example.com *").narrow


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a.example b.example", "not an HTTP method"),
        ("a.example CONNECT", "not an HTTP method"),
        ("a.example GET,", "not an HTTP method"),
        ("a.example GET x", "not a path prefix"),
        ("a.example GET /a GET", "not a path prefix"),
        ("a.example /a/../b", "'..' segment"),
        ("a.example /a/%2E/b", "'..' segment"),
        ("a.example /a/%zz", "bad %-escape"),
        ("a.example /a#b", "no query or fragment"),
        ("a.example GET\x1b[2J /a", "control characters"),
        ("a.example /" + "a" * 600, "longer than 512"),
        ("a.example " + "/a " * 1000, "longer than 2048"),
        ("https://a.example/x GET", "not a URL"),
    ],
)
def test_bad_rules_are_refused_in_one_line(text, needle):
    with pytest.raises(PatternError, match=needle) as exc:
        parse_pattern(text)
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 300


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("/a/b?q=1#f", "/a/b"),
        ("/%7e%41%2d/x", "/~A-/x"),
        ("/a%2fb", "/a%2Fb"),
        ("/caf\u00e9", "/caf%C3%A9"),
        ("/\udcff", "/%FF"),  # a non-UTF-8 byte, as mitmproxy hands it over
        ("/a b", "/a%20b"),
        ("/a/...", "/a/..."),  # three dots are a name, not a dot segment
    ],
)
def test_paths_have_one_normal_form(raw, norm):
    assert normalise_path(raw) == norm
    assert normalise_path(norm) == norm


@pytest.mark.parametrize(
    "raw",
    [
        "/a/../b",
        "/a/./b",
        "/a/..",
        "/a/%2e%2e/b",
        "/a/.%2E/b",
        "/a/..%2fb",
        "/a/..%5cb",
        "/a\\..\\b",
        "/a/..;x/b",
        "/a/%252e%252e/b",
        "/a/%252F",
        "/a/%",
        "/a/%g0",
        "*",
        "",
        "relative/x",
    ],
)
def test_a_path_no_rule_may_admit(raw):
    assert normalise_path(raw) is None


def test_requests_pass_when_any_entry_for_their_host_admits_them():
    allow = Allowlist.parse(
        [
            "api.example.com GET,HEAD /repos/acme/",
            "api.example.com POST /repos/acme/issues/",
            "*.cdn.example",
            "files.cdn.example GET /only/",
        ]
    )
    ok = lambda *a: allow.check_request(*a).allowed  # noqa: E731
    assert ok("API.example.com", 443, "GET", "/repos/acme/x?y=1")
    assert ok("api.example.com", 443, "get", "/repos/acme/x")  # methods compare in upper case
    assert ok("api.example.com", 443, "POST", "/repos/acme/issues/1/comments")
    assert not ok("api.example.com", 443, "POST", "/repos/acme/x")
    assert not ok("api.example.com", 443, "GET", "/repos/acmefoo/")
    assert not ok("api.example.com", 443, "GET", "/repos/acme/../../admin")
    assert ok("files.cdn.example", 443, "DELETE", "/anything")  # the wildcard is plain
    assert allow.check("api.example.com", 443).inspect
    assert not allow.check("files.cdn.example", 443).inspect
    assert not allow.check("nowhere.example", 443).allowed


def test_a_refusal_suggests_the_narrowest_entry_that_admits_it():
    allow = Allowlist.parse(["api.example.com:443 GET /ok/"])
    d = allow.check_request("api.example.com", 443, "POST", "/ok/x/y?z=1")
    assert (d.allowed, d.rule.text if d.rule else None) == (False, "api.example.com:443 GET /ok/")
    assert d.suggest == "api.example.com:443 POST /ok/x/"
    grown = Allowlist.parse([*allow.texts, d.suggest])
    assert grown.check_request("api.example.com", 443, "POST", "/ok/x/y?z=1").allowed
    assert not grown.check_request("api.example.com", 443, "POST", "/ok/other").allowed
    assert allow.check_request("api.example.com", 443, "GET", "/other").suggest == (
        "api.example.com:443 GET /"
    )
    assert allow.check_request("new.example", 8443, "GET", "/x").suggest == "new.example:8443"
    assert allow.check_request("::1", 80, "GET", "/x").suggest == "[::1]:80"
    assert allow.check_request("a" * 300, 443, "GET", "/").suggest is None  # not a host name
    assert allow.check_request("api.example.com", 443, "GET", "/ok/../x").suggest is None
    assert allow.check_request("api.example.com", 443, "BREW", "/ok/x").suggest is None


def test_suggested_prefixes_stop_at_the_last_slash_within_bounds():
    assert suggest_prefix("/repos/acme/widgets/issues/12") == "/repos/acme/widgets/issues/"
    assert suggest_prefix("/x") == "/"
    long = "/" + "a/" * 400 + "leaf"
    cut = suggest_prefix(long)
    assert len(cut) <= 512 and cut.endswith("/") and long.startswith(cut)


# --- the request ledger ----------------------------------------------------------------


def test_the_ledger_keeps_the_most_recently_refused_and_counts_the_rest(tmp_path):
    ledger = RequestLedger(tmp_path / "egress.requests.json", "b", max_entries=3)
    for host in ("a", "b", "c", "a", "d"):  # "b" is now the least recently refused
        ledger.record(f"{host}.example", 443, connect=True, suggest=f"{host}.example:443")
    doc = ledger.document()
    assert [e["key"] for e in doc["requests"]] == [
        "c.example:443",
        "a.example:443",
        "d.example:443",
    ]
    assert doc["dropped"] == 1
    assert doc["requests"][1]["count"] == 2
    ledger.write()
    assert oct(os.stat(ledger.path).st_mode & 0o777) == "0o600"
    again = RequestLedger(ledger.path, "b", max_entries=3)
    again.load()
    assert again.document() == doc


def test_the_ledger_makes_the_agents_text_printable_and_bounded(tmp_path):
    ledger = RequestLedger(tmp_path / "l.json", "b")
    ledger.record(
        "evil\x1b]0;x\x07.example" + "h" * 1000,
        80,
        connect=False,
        method="GET\x00",
        path="/a\n\udcff" + "p" * 2000 + "?secret=1",
        rule="r",
        suggest=None,
        prefix="/a/",
    )
    (e,) = ledger.document()["requests"]
    assert e["host"].startswith("evil%1B]0;x%07.example") and len(e["host"]) <= 255
    assert e["method"] == "GET%00"
    assert e["path"].startswith("/a%0A%FF") and len(e["path"]) <= 512 and "secret" not in e["path"]
    assert e["key"].endswith(" GET%00 /a/")
    json.dumps(ledger.document(), ensure_ascii=True).encode("ascii")


def test_a_ledger_that_is_a_link_is_not_followed(tmp_path):
    secret = tmp_path / "elsewhere.json"
    secret.write_text(json.dumps({"v": 1, "dropped": 0, "requests": []}))
    link = tmp_path / "egress.requests.json"
    link.symlink_to(secret)
    ledger = RequestLedger(link, "b")
    ledger.load()
    ledger.record("x.example", 443, connect=True)
    ledger.write()
    assert not link.is_symlink()  # replaced, never written through
    assert json.loads(secret.read_text())["requests"] == []
