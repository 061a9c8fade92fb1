"""`cftui demo`'s home and bots, without an engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfproxies.envfile import read_env_file

from cftui.demo import DEMO_BOTS, FAKE_LLM, PLACEHOLDER_KEY, demo_home, ensure_demo_bots
from cftui.fleet import FleetHome


def test_demo_home_is_separate_unless_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLAWFACTORY_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert demo_home(None).root == tmp_path / "clawfactory-demo"
    assert demo_home(str(tmp_path / "x")).root == tmp_path / "x"
    monkeypatch.setenv("CLAWFACTORY_HOME", str(tmp_path / "env"))
    assert demo_home(None).root == tmp_path / "env"


def test_demo_bots_call_the_fake_provider_and_probe_it_directly(tmp_path: Path) -> None:
    home = FleetHome(tmp_path / "demo")
    bots = ensure_demo_bots(home, "http://172.30.0.2:8080/health")
    assert [b.name for b in bots] == list(DEMO_BOTS)
    for bot in bots:
        assert bot.gateway == "generic"
        assert bot.upstreams["anthropic"] == f"http://{FAKE_LLM}:8080"
        assert (home.code_dir(bot.name) / "agent.py").is_file()
        keys = read_env_file(home.providers_env(bot.name))
        assert keys["ANTHROPIC_API_KEY"] == PLACEHOLDER_KEY
        env = read_env_file(home.gateway_env(bot.name))
        assert env["CF_DEMO_PROBE_URL"] == "http://172.30.0.2:8080/health"
        assert env["CF_PROXY_TOKEN"].startswith("cfp_")
        assert home.gateway_env(bot.name).stat().st_mode & 0o777 == 0o600
    assert len({b.gateway_port for b in bots}) == len(bots)


def test_demo_bots_are_reused_and_real_keys_kept(tmp_path: Path) -> None:
    home = FleetHome(tmp_path / "demo")
    ensure_demo_bots(home, "http://a/health")
    path = home.providers_env(DEMO_BOTS[0])
    path.write_text(path.read_text().replace(PLACEHOLDER_KEY, "sk-operator", 1))
    again = ensure_demo_bots(home, "http://b/health")
    assert [b.name for b in again] == list(DEMO_BOTS)
    assert read_env_file(path)["ANTHROPIC_API_KEY"] == "sk-operator"
    env = read_env_file(home.gateway_env(DEMO_BOTS[0]))
    assert env["CF_DEMO_PROBE_URL"] == "http://b/health"


def test_demo_bots_fetch_through_their_egress_the_fake_provider_listed(tmp_path: Path) -> None:
    """The demo agent fetches a listed and an unlisted URL through the egress
    (issue #22): the fake provider's name and its current address are
    listed, an address it had before dropped, the operator's entries kept."""
    from cftui.demo import DEMO_ALLOWED_URL, DEMO_UNLISTED_URL
    from cftui.runtime.docker.spec import allowlisted_hosts, egress_spec

    home = FleetHome(tmp_path / "demo")
    ensure_demo_bots(home, "http://172.30.0.2:8080/health", fake_llm_ip="172.30.0.2")
    home.update_bot(DEMO_BOTS[0], egress_allow=[*home.bot(DEMO_BOTS[0]).egress_allow, "a.example"])
    bots = ensure_demo_bots(home, "http://172.30.0.9:8080/health", fake_llm_ip="172.30.0.9")
    assert list(bots[0].egress_allow) == ["a.example", f"{FAKE_LLM}:8080", "172.30.0.9:8080"]
    assert list(bots[1].egress_allow) == [f"{FAKE_LLM}:8080", "172.30.0.9:8080"]
    env = read_env_file(home.gateway_env(bots[0].name))
    assert env["CF_DEMO_ALLOWED_URL"] == DEMO_ALLOWED_URL == f"http://{FAKE_LLM}:8080/health"
    assert env["CF_DEMO_UNLISTED_URL"] == DEMO_UNLISTED_URL
    # The egress is attached to the fake provider's networks, as the LLM proxy is.
    assert allowlisted_hosts(bots[0]) == [FAKE_LLM]
    spec = egress_spec(home, bots[0], "img", "age1x", ["cf-demo"])
    assert spec.networks[-1] == "cf-demo"
