"""The capture and egress commands: what they write, and bad input refused
in one line with nothing lost."""

from __future__ import annotations

import http.client
import json
import subprocess

import pytest
from cfproxies.egress.patterns import Allowlist, PatternError, is_public_address, parse_pattern

from cftui.audit.events import read_events
from cftui.botinit import init_bot
from cftui.egress_control import control_path
from tests.egress.egress_support import CF_EGRESS, local


@pytest.fixture
def cbot(home) -> str:
    init_bot(home, "cbot")
    return "cbot"


def test_capture_on_sets_fleet_toml_the_control_file_and_an_event(home, cbot, cli):
    r = cli("capture", "on", cbot)
    assert r.code == 0, r.err
    assert "not running" in r.out
    assert home.bot(cbot).capture is True
    control = json.loads(control_path(home, cbot).read_text())
    assert control["capture"] is True
    assert oct(control_path(home, cbot).stat().st_mode & 0o777) == "0o600"
    (event,) = [e for e in read_events(home, cbot) if e["action"] == "capture"]
    assert event["state"] == "on"


def test_egress_allow_remove_and_set(home, cbot, cli):
    assert cli("egress", cbot, "--allow", "api.example.com", "--allow", "*.pypi.org:443").code == 0
    assert home.bot(cbot).egress_allow == ("api.example.com", "*.pypi.org:443")
    r = cli("egress", cbot, "--remove", "api.example.com")
    assert r.code == 0
    assert home.bot(cbot).egress_allow == ("*.pypi.org:443",)
    assert json.loads(control_path(home, cbot).read_text())["allow"] == ["*.pypi.org:443"]
    assert cli("egress", cbot, "--set", "a.example", "10.0.0.0/8").code == 0
    assert home.bot(cbot).egress_allow == ("a.example", "10.0.0.0/8")
    r = cli("egress", cbot, "--json")
    assert json.loads(r.out)["allow"] == ["a.example", "10.0.0.0/8"]
    assert [e["allow"] for e in read_events(home, cbot) if e["action"] == "egress"][-1] == [
        "a.example",
        "10.0.0.0/8",
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("egress", "cbot", "--allow", "https://api.example.com/v1"),
        ("egress", "cbot", "--allow", "*"),
        ("egress", "cbot", "--allow", "*.com"),
        ("egress", "cbot", "--allow", "host:99999"),
        ("egress", "cbot", "--remove", "never.listed"),
        ("egress", "cbot", "--allow", "api.example.com GETT /x/"),
        ("egress", "cbot", "--allow", "api.example.com GET x/"),
        ("egress", "cbot", "--allow", "api.example.com GET /a/../b/"),
        ("egress", "cbot", "--allow", "api.example.com GET /a/%2e%2e/"),
        ("egress", "cbot", "--allow", "api.example.com GET /a?q=1"),
        ("egress", "cbot", "--allow", "api.example.com GET /a\nevil.example"),
        ("egress", "cbot", "--allow", "api.example.com GET /" + "x" * 10_000),
        ("egress", "cbot", "--set", "a.example", "--allow", "b.example"),
        ("capture", "maybe", "cbot"),
        ("capture", "on", "Bad_Name"),
        ("decrypt", "cbot", "--limit", "-1"),
        ("decrypt", "nosuchbot"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(home, cbot, cli, args):
    cli("egress", cbot, "--allow", "keep.example")
    before = home.fleet_toml.read_text()
    events_before = home.events_log.read_text()
    r = cli(*args)
    assert r.code == 2, (r.code, r.err)
    assert len(r.err.strip().splitlines()) == 1
    assert "Traceback" not in r.err
    assert home.fleet_toml.read_text() == before
    assert home.events_log.read_text() == events_before


def test_egress_takes_rules_by_method_and_path_in_their_canonical_form(home, cbot, cli):
    r = cli("egress", cbot, "--allow", "api.github.com  get,HEAD,get /repos/acme/ /repos/%7eme/")
    assert r.code == 0, r.err
    rule = "api.github.com GET,HEAD /repos/acme/ /repos/~me/"
    assert home.bot(cbot).egress_allow == (rule,)
    assert json.loads(control_path(home, cbot).read_text())["allow"] == [rule]
    assert rule in r.out
    # Removing takes any spelling of the same rule.
    assert (
        cli("egress", cbot, "--remove", "api.github.com get,head /repos/acme/ /repos/%7Eme/").code
        == 0
    )
    assert home.bot(cbot).egress_allow == ()


def test_egress_help_gives_the_grammar(cli):
    r = cli("egress", "--help")
    assert r.code == 0
    assert "HOST [METHODS] [PREFIX ...]" in r.out
    assert "'api.github.com GET,HEAD /repos/acme/'" in r.out


def test_a_bad_rule_in_fleet_toml_is_one_line_when_handed_to_the_proxy(home, cbot):
    from cftui.egress_control import sync_control
    from cftui.errors import FleetError

    with home.editing() as doc:
        doc["bots"][cbot]["egress_allow"] = ["ok.example", "api.example.com POST nope"]
    with pytest.raises(FleetError) as exc:
        sync_control(home, cbot)
    assert str(exc.value).startswith(f"fleet.toml: [bots.{cbot}] egress_allow: bad egress rule")
    assert "\n" not in str(exc.value)
    assert not control_path(home, cbot).exists()


def test_the_docker_egress_command_passes_each_rule_as_one_argument(home, cbot):
    from cftui.runtime.docker.spec import egress_spec

    home.update_bot(cbot, egress_allow=("a.example", "api.example.com GET /v1/"))
    command = egress_spec(home, home.bot(cbot), "img", "age1x").command
    i = command.index("api.example.com GET /v1/")
    assert command[i - 1] == "--allow"


@pytest.mark.parametrize(
    ("value", "entries"),
    [
        ("a.example, *.b.example  c.example", ["a.example", "*.b.example", "c.example"]),
        ("a.example\napi.example.com GET,HEAD /x/\n# a comment\n\n", None),
    ],
)
def test_cf_allow_is_one_entry_a_line_and_old_lists_still_work(
    value, entries, monkeypatch, tmp_path
):
    from cfproxies.egress.config import parse_config

    monkeypatch.setenv("CF_ALLOW", value)
    config = parse_config(_base_flags(tmp_path))
    assert list(config.allow) == (entries or ["a.example", "api.example.com GET,HEAD /x/"])


@pytest.mark.parametrize("value", ["api.example.com GET /x/", "a.example /x/", "a.example POST"])
def test_an_old_style_cf_allow_holding_a_rule_is_refused_not_split(value, monkeypatch, tmp_path):
    from cfproxies.egress.config import ConfigError, parse_config

    monkeypatch.setenv("CF_ALLOW", value)
    with pytest.raises(ConfigError, match="one entry a line"):
        parse_config(_base_flags(tmp_path))


def test_cf_egress_reads_an_allow_file(tmp_path):
    from cfproxies.egress.config import ConfigError, parse_config

    allow = tmp_path / "egress.allow"
    allow.write_text("# rules\napi.example.com GET /v1/\n\nb.example\n")
    config = parse_config(
        [*_base_flags(tmp_path), "--allow", "a.example", "--allow-file", str(allow)]
    )
    assert list(config.allow) == ["a.example", "api.example.com GET /v1/", "b.example"]
    allow.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        parse_config([*_base_flags(tmp_path), "--allow-file", str(allow)])
    with pytest.raises(ConfigError, match="--allow-file"):
        parse_config([*_base_flags(tmp_path), "--allow-file", str(tmp_path / "missing")])


RECIPIENT = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"


def _base_flags(tmp_path) -> list[str]:
    return [
        "--bot",
        "b",
        "--audit-dir",
        str(tmp_path),
        "--confdir",
        str(tmp_path / "c"),
        "--recipient",
        RECIPIENT,
    ]


def test_decrypt_of_a_bot_without_capture_says_how_to_turn_it_on(home, cbot, cli):
    r = cli("decrypt", cbot)
    assert r.code == 0
    assert "cftui capture on cbot" in r.err


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--recipient", "age1nope"], "--recipient"),
        (["--allow", "http://x.example/"], "not a URL"),
        (["--listen", "nowhere"], "--listen"),
    ],
)
def test_cf_egress_refuses_bad_flags_in_one_line(tmp_path, extra, needle):
    base = ["--bot", "b", "--audit-dir", str(tmp_path), "--confdir", str(tmp_path / "c")]
    base += ["--recipient", "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"]
    proc = subprocess.run(
        [str(CF_EGRESS), *base, *extra], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert needle in proc.stderr


def test_patterns_match_hosts_wildcards_ports_and_addresses():
    allow = Allowlist.parse(["api.example.com", "*.github.com:443", "10.1.0.0/16", "[::1]:80"])
    assert allow.check("API.Example.com.", 8443).allowed
    assert allow.check("raw.github.com", 443).allowed
    assert not allow.check("github.com", 443).allowed  # *.domain means its subdomains
    assert not allow.check("raw.github.com", 80).allowed
    assert not allow.check("evilgithub.com", 443).allowed
    assert allow.check("10.1.2.3", 1).allowed
    assert not allow.check("10.2.0.1", 1).allowed
    assert allow.check("::1", 80).allowed
    assert not allow.check("127.0.0.1", 80).allowed
    assert allow.check("raw.github.com", 443).exact is False
    assert allow.check("api.example.com", 443).exact is True


def test_ip_literals_never_match_name_patterns_and_private_ranges_are_known():
    assert not Allowlist.parse(["localhost"]).check("127.0.0.1", 80).allowed
    for addr in ("127.0.0.1", "10.0.0.1", "192.168.1.1", "169.254.169.254", "::1", "fd00::1"):
        assert not is_public_address(addr), addr
    assert not is_public_address("::ffff:10.0.0.1")
    # IPv6 addresses that lead to an IPv4 one are judged by it (NAT64, 6to4).
    for addr in ("64:ff9b::a00:1", "64:ff9b:1::7f00:1", "2002:a00:1::1"):
        assert not is_public_address(addr), addr
    assert is_public_address("64:ff9b::5db8:d822")  # 93.184.216.34
    assert is_public_address("2606:2800:220:1:248:1893:25c8:1946")
    assert is_public_address("93.184.216.34")
    with pytest.raises(PatternError):
        parse_pattern("0.0.0.0/0")


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1"])
def test_numeric_host_spellings_are_addresses_not_names(host):
    # The resolver reads these as 127.0.0.1; a name pattern must not admit them.
    assert not Allowlist.parse(["*.0.1", "*.0.0.1", "localhost"]).check(host, 80).allowed
    assert Allowlist.parse(["127.0.0.0/8"]).check(host, 80).allowed


def test_cf_egress_stops_cleanly_on_sigterm_and_says_it_is_down(
    start_egress, home, cli, http_server
):
    eg = start_egress(local(http_server), capture=True)
    eg.wait_stats(lambda s: s["running"] and s["capture"])
    # A client still connected when the proxy stops is cut off quietly.
    conn = http.client.HTTPConnection("127.0.0.1", eg.port, timeout=10)
    conn.request("GET", f"http://localhost:{http_server.port}/open")
    assert conn.getresponse().read()
    eg.proc.terminate()
    assert eg.proc.wait(15) == 0
    assert eg.stderr_closed.wait(5)
    assert not [line for line in eg.stderr_lines if "Traceback" in line], eg.stderr_lines
    conn.close()
    stats = eg.stats()
    assert stats["running"] is False
    assert stats["capture"] is False  # the session key is gone with the process
    # With the proxy down, a change is written for its next start, not waited on.
    r = cli("capture", "off", "egbot")
    assert r.code == 0
    assert "not running" in r.out
