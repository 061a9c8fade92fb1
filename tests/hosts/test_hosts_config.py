"""`[hosts.NAME]` of fleet.toml and a bot's `host`: what is accepted, and a
one-line refusal (exit 2 from the CLI) for everything else."""

from __future__ import annotations

import json

import pytest

from cftui.errors import FleetError
from cftui.fleet import FleetHome
from cftui.hosts.config import LOCAL, parse_host_url, parse_hosts

DEMO = "cftui/templates/demo-agent"


def test_local_is_implicit_and_first() -> None:
    hosts = parse_hosts({"s2": {"url": "ssh://ops@server2.example:2200"}})
    assert list(hosts) == [LOCAL, "s2"]
    s2 = hosts["s2"]
    assert (s2.user, s2.server, s2.port, s2.is_local) == ("ops", "server2.example", 2200, False)
    assert parse_hosts(None)[LOCAL].is_local


@pytest.mark.parametrize(
    ("url", "port"),
    [("ssh://ops@10.0.0.2", 22), ("ssh://a_b.c@host-1.example:65535", 65535),
     ("ssh://ops@[fe80::1]:2222", 2222)],
)  # fmt: skip
def test_good_urls(url: str, port: int) -> None:
    assert parse_host_url(url)[2] == port


@pytest.mark.parametrize(
    "url",
    [
        "http://ops@server",  # not ssh
        "ssh://server",  # no user
        "ssh://ops:secret@server",  # a password never belongs in fleet.toml
        "ssh://-oProxyCommand=x@server",  # option-looking user
        "ssh://ops@-oProxyCommand=touch",  # option-looking server
        "ssh://ops@server:0",
        "ssh://ops@server:99999",
        "ssh://ops@server:22x",
        "ssh://ops@server/path",
        "ssh://ops@ser ver",
        "ssh://ops@server\n",
        "",
    ],
)
def test_bad_urls_are_one_line(url: str) -> None:
    with pytest.raises(FleetError) as err:
        parse_hosts({"s2": {"url": url}})
    assert "\n" not in str(err.value) and "[hosts.s2]" in str(err.value)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"local": {"url": "ssh://a@b"}}, "always there"),
        ({"Bad_Name": {"url": "ssh://a@b"}}, "host name"),
        ({"s2": "ssh://a@b"}, "must be a table"),
        ({"s2": {}}, "url"),
        ({"s2": {"url": "ssh://a@b", "password": "x"}}, "unknown key 'password'"),
        ({"s2": {"url": "ssh://a@b", "root": "relative/dir"}}, "absolute path"),
        ({"s2": {"url": "ssh://a@b", "root": "/srv/../etc"}}, "no '..'"),
        ({"s2": {"url": "ssh://a@b", "docker_socket": 5}}, "docker_socket"),
        (["s2"], "must be tables"),
    ],
)
def test_bad_tables(raw: object, words: str) -> None:
    with pytest.raises(FleetError, match=words.replace("(", r"\(")) as err:
        parse_hosts(raw)
    assert "\n" not in str(err.value)


def test_a_bot_on_an_unknown_host_is_refused(home: FleetHome) -> None:
    home.root.mkdir(parents=True)
    home.fleet_toml.write_text('[bots.b1]\nruntime = "docker"\nhost = "gone"\n')
    with pytest.raises(FleetError, match=r"host 'gone' has no \[hosts.gone\]"):
        home.bots()
    home.fleet_toml.write_text('[bots.b1]\nruntime = "lima"\nhost = "gone"\n')
    with pytest.raises(FleetError, match="only a docker bot"):
        home.bots()


def test_init_host(home: FleetHome, cli) -> None:
    r = cli("init", "b1", "--host", "s2", "--code", DEMO)
    assert r.code == 2 and "no host named 's2'" in r.err and len(r.err.splitlines()) == 1
    assert not home.secrets_dir("b1").exists()  # refused before touching anything
    r = cli("init", "b1", "--host", "../x", "--code", DEMO)
    assert r.code == 2 and "bad host name" in r.err

    home.root.mkdir(parents=True, exist_ok=True)
    home.fleet_toml.write_text('# my hosts\n[hosts.s2]\nurl = "ssh://ops@10.250.21.2:2222"\n')
    r = cli("init", "b1", "--host", "s2", "--code", DEMO)
    assert r.code == 0, r.err
    assert "on host s2" in r.out
    assert home.bot("b1").host == "s2"
    r = cli("init", "b2", "--code", DEMO)
    assert home.bot("b2").host == LOCAL
    text = home.fleet_toml.read_text()
    assert text.startswith("# my hosts") and text.count("host = ") == 1
    assert home.hosts()["s2"].port == 2222

    r = cli("init", "b3", "--host", "s2", "--runtime", "lima", "--code", DEMO)
    assert r.code == 2 and "only a docker bot" in r.err


def test_hosts_cli_rejects_bad_fleet_toml(home: FleetHome, cli) -> None:
    home.root.mkdir(parents=True)
    home.fleet_toml.write_text('[hosts.s2]\nurl = "ssh://ops:hunter2@server"\n')
    r = cli("hosts")
    assert r.code == 1 and len(r.err.splitlines()) == 1 and "Traceback" not in r.err
    assert "password" in r.err and "hunter2" not in r.err
    r = cli("hosts", "--timeout", "0")
    assert r.code == 2


def test_a_remote_bot_is_never_run_or_called_stopped_here(home: FleetHome, cli) -> None:
    """A bot on a host that does not answer: start and stop say the host is
    unreachable (in one line, before anything is built), and its status
    is "unknown", never "stopped": this machine's engine is never asked."""
    home.root.mkdir(parents=True)
    home.fleet_toml.write_text('[hosts.s2]\nurl = "ssh://ops@10.250.21.99:2222"\n')
    assert cli("init", "far", "--host", "s2", "--code", DEMO).code == 0
    r = cli("start", "far")
    assert r.code == 1 and "host s2" in r.err and "unreachable" in r.err
    assert len(r.err.splitlines()) == 1 and "Traceback" not in r.err
    r = cli("stop", "far")
    assert r.code == 1 and "host s2" in r.err and "unreachable" in r.err
    assert len(r.err.splitlines()) == 1 and "Traceback" not in r.err
    r = cli("status", "--json")
    row = json.loads(r.out)[0]
    assert row["state"] == "unknown" and "unreachable" in row["error"]
    assert row["host"] == "s2"
    listing = cli("list").out.splitlines()
    assert listing[0].split()[:4] == ["BOT", "RUNTIME", "HOST", "STATE"]
    assert listing[1].split()[:4] == ["far", "docker", "s2", "unknown"]
