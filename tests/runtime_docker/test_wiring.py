"""The gateway's wiring to its proxies, and the shape of its container,
checked without an engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from cftui.fleet import BotConfig, FleetHome, Limits
from cftui.gateway.wiring import (
    CA_BUNDLE,
    CA_PEM,
    EGRESS_PROXY,
    gateway_environment,
    node_heap_mb,
    wire_models_json,
    wire_openclaw_config,
)
from cftui.runtime.docker import spec

ENV = {"CF_PROXY_TOKEN": "cfp_tok", "OPENCLAW_GATEWAY_TOKEN": "cfg_ui", "EXTRA": "kept"}


def test_generic_gateway_env_points_every_sdk_at_the_proxies_with_the_token() -> None:
    env = gateway_environment("generic", bot="b", gateway_env=ENV, memory_mb=1024)
    assert env["ANTHROPIC_BASE_URL"] == "http://llm-proxy:9090/anthropic"
    assert env["OPENAI_BASE_URL"] == "http://llm-proxy:9090/openai/v1"
    assert env["GEMINI_API_BASE"] == "http://llm-proxy:9090/gemini"
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"):
        assert env[key] == "cfp_tok"
    assert env["HTTP_PROXY"] == env["HTTPS_PROXY"] == env["OPENCLAW_PROXY_URL"] == EGRESS_PROXY
    assert "llm-proxy" in env["NO_PROXY"].split(",")
    assert env["NODE_EXTRA_CA_CERTS"] == CA_PEM
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == CA_BUNDLE
    assert env["OPENCLAW_DISABLE_BONJOUR"] == "1"
    assert env["EXTRA"] == "kept"


def test_gateway_env_wiring_wins_over_gateway_env_file() -> None:
    env = gateway_environment(
        "generic", bot="b", gateway_env={**ENV, "HTTPS_PROXY": "http://evil"}, memory_mb=1024
    )
    assert env["HTTPS_PROXY"] == EGRESS_PROXY


def test_node_heap_stays_below_the_memory_limit() -> None:
    for limit in (512, 1024, 2048, 8192):
        heap = node_heap_mb(limit)
        assert 0 < heap < limit
    env = gateway_environment("openclaw", bot="b", gateway_env=ENV, memory_mb=2048)
    assert env["NODE_OPTIONS"] == f"--max-old-space-size={node_heap_mb(2048)}"
    assert env["OPENCLAW_STATE_DIR"] == "/state"


def test_openclaw_config_points_providers_at_proxy_and_keeps_other_keys() -> None:
    config = {
        "agents": {"defaults": {"model": {"primary": "anthropic/claude"}}},
        "models": {
            "providers": {
                "anthropic": {"baseUrl": "https://api.anthropic.com", "apiKey": "sk-real"},
                "mine": {"api": "openai-completions", "baseUrl": "https://x", "apiKey": "k"},
                "other": {"api": "something-else", "baseUrl": "https://y"},
            }
        },
    }
    wired = wire_openclaw_config(config, proxy_token="cfp_tok", gateway_token="cfg_ui")
    providers = wired["models"]["providers"]
    assert providers["anthropic"] == {
        "baseUrl": "http://llm-proxy:9090/anthropic",
        "apiKey": "cfp_tok",
    }
    assert providers["mine"]["baseUrl"] == "http://llm-proxy:9090/openai/v1"
    assert providers["mine"]["apiKey"] == "cfp_tok"
    assert providers["other"] == {"api": "something-else", "baseUrl": "https://y"}
    assert wired["proxy"]["proxyUrl"] == EGRESS_PROXY
    assert wired["gateway"]["mode"] == "local"
    assert wired["gateway"]["auth"] == {"mode": "token", "token": "cfg_ui"}
    # Other agent defaults are kept; the workspace is the approved tree (issue 17).
    assert wired["agents"] == {
        "defaults": {**config["agents"]["defaults"], "workspace": "/code/workspace"}
    }
    assert config["models"]["providers"]["anthropic"]["apiKey"] == "sk-real"  # input untouched


def test_openclaw_config_without_providers_gets_proxy_providers() -> None:
    wired = wire_openclaw_config({}, proxy_token="t", gateway_token="g")
    assert set(wired["models"]["providers"]) == {"anthropic", "openai"}
    assert all(p["apiKey"] == "t" for p in wired["models"]["providers"].values())


def test_openclaw_config_survives_wrong_types() -> None:
    wired = wire_openclaw_config(
        {"models": [], "proxy": "x", "gateway": 3}, proxy_token="t", gateway_token="g"
    )
    assert wired["proxy"] == {"proxyUrl": EGRESS_PROXY}
    assert wired["gateway"]["mode"] == "local"


def test_agent_models_json_base_urls_are_rewritten() -> None:
    data = {
        "providers": {
            "anthropic": {"baseUrl": "https://api.anthropic.com", "apiKey": "sk-real"},
            "google": {"baseUrl": "https://generativelanguage.googleapis.com"},
        }
    }
    wired = wire_models_json(data, proxy_token="t")
    assert wired["providers"]["anthropic"] == {
        "baseUrl": "http://llm-proxy:9090/anthropic",
        "apiKey": "t",
    }
    assert wired["providers"]["google"]["baseUrl"] == "http://llm-proxy:9090/gemini"


@pytest.fixture
def fleet(tmp_path: Path) -> FleetHome:
    return FleetHome(tmp_path / "home")


def _bot() -> BotConfig:
    return BotConfig(
        name="b",
        gateway="generic",
        gateway_port=18999,
        limits=Limits(memory_mb=768, cpus=0.5, pids=100),
        egress_allow=("api.github.com",),
        upstreams={"anthropic": "http://cf-fake-llm:8080", "openai": "https://api.example.com"},
    )


def test_gateway_container_is_hardened_and_mounts_only_its_trees(fleet: FleetHome) -> None:
    gw = spec.gateway_spec(fleet, _bot(), "img", {"A": "1"})
    hc = gw.host_config
    assert hc["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in hc["security_opt"]
    assert hc["read_only"] is True
    assert "/tmp" in hc["tmpfs"]
    assert hc["mem_limit"] == "768m" and hc["pids_limit"] == 100
    assert hc["nano_cpus"] == 500_000_000
    assert not gw.user.startswith("0:")
    targets = {m["Target"]: m for m in hc["mounts"]}
    writable = {"/code/workspace/memory", "/code/workspace/b_save"}
    assert set(targets) == {"/code", "/code/.git", "/state", "/ca-public", "/proposals", *writable}
    assert targets["/ca-public"]["ReadOnly"] is True
    # The approved tree is read-only; only its writable paths and the
    # proposals tree are not (issue 17).
    assert targets["/code"]["ReadOnly"] is True
    for target in writable:
        assert targets[target]["ReadOnly"] is False
        assert targets[target]["Source"] == str(fleet.code_dir("b") / target[len("/code/") :])
    assert targets["/proposals"]["Source"] == str(fleet.proposals_dir("b"))
    assert targets["/proposals"]["ReadOnly"] is False
    # The repository host git runs in: read-only, and a mount point the
    # gateway cannot rename or replace.
    assert targets["/code/.git"]["ReadOnly"] is True
    assert targets["/code/.git"]["Source"] == str(fleet.code_dir("b") / ".git")
    sources = " ".join(m["Source"] for m in hc["mounts"])
    for forbidden in ("secrets", "audit", "snapshots", "docker.sock"):
        assert forbidden not in sources
    assert gw.networks == ["cf-b-int"]


def test_only_the_llm_proxy_mounts_providers_env(fleet: FleetHome) -> None:
    bot = _bot()
    specs = [
        spec.gateway_spec(fleet, bot, "i", {}),
        spec.front_spec(bot, "i"),
        spec.egress_spec(fleet, bot, "i", "age1x"),
    ]
    for s in specs:
        assert all("providers.env" not in m["Source"] for m in s.host_config.get("mounts", []))
    proxy = spec.llm_proxy_spec(fleet, bot, "i", "tok", ["cf-demo"])
    mounts = {m["Target"]: m for m in proxy.host_config["mounts"]}
    assert mounts[spec.PROVIDERS_ENV_MOUNT]["ReadOnly"] is True
    assert proxy.environment == {"CF_PROXY_TOKEN": "tok"}
    assert "tok" not in proxy.command
    assert proxy.networks == ["cf-b-int", "cf-b-ext", "cf-demo"]
    assert "--upstream" in proxy.command and "anthropic=http://cf-fake-llm:8080" in proxy.command


def test_egress_command_is_the_agreed_one(fleet: FleetHome) -> None:
    egress = spec.egress_spec(fleet, _bot(), "i", "age1abc")
    assert egress.command == [
        "cf-egress", "--listen", "0.0.0.0:8888", "--bot", "b", "--audit-dir", "/audit",
        "--confdir", "/confdir", "--recipient", "age1abc", "--capture", "off",
        "--allow", "api.github.com",
        "--control", "/audit/egress.control.json", "--ca-export", "/ca-public",
    ]  # fmt: skip


def test_front_publishes_on_loopback_only(fleet: FleetHome) -> None:
    front = spec.front_spec(_bot(), "i")
    assert front.host_config["port_bindings"] == {8080: ("127.0.0.1", 18999)}


def test_upstream_hosts_are_only_bare_container_names() -> None:
    assert spec.upstream_hosts(_bot()) == ["cf-fake-llm"]


def test_spec_hash_changes_with_image_and_config(fleet: FleetHome) -> None:
    a = spec.gateway_spec(fleet, _bot(), "img", {"A": "1"})
    b = spec.gateway_spec(fleet, _bot(), "img", {"A": "2"})
    assert a.spec_hash("sha256:1") == a.spec_hash("sha256:1")
    assert a.spec_hash("sha256:1") != a.spec_hash("sha256:2")
    assert a.spec_hash("sha256:1") != b.spec_hash("sha256:1")
