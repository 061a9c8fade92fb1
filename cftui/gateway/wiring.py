"""How a gateway is pointed at its bot's LLM proxy and egress proxy
(CONTRACTS §4): its environment, and for OpenClaw its own configuration.

Pure functions, no I/O: the runtime reads `gateway.env` and the gateway's
`state/openclaw.json`, asks these functions what they should become, and
writes the result. Environment variables alone do not hold OpenClaw (its
HTTP client ignores `HTTP(S)_PROXY` on many paths, `ANTHROPIC_BASE_URL` is not
reliably honoured), hence the config wiring; the internal network is what
guarantees containment whatever the gateway honours.
"""

from __future__ import annotations

import copy
from typing import Any

LLM_PROXY = "http://llm-proxy:9090"
EGRESS_PROXY = "http://egress:8888"
GATEWAY_PORT = 18789
CA_DIR = "/ca-public"
CA_PEM = f"{CA_DIR}/ca.pem"
CA_BUNDLE = f"{CA_DIR}/bundle.pem"
CODE_MOUNT = "/code"
STATE_MOUNT = "/state"
# The gateway's proposals work tree (CONTRACTS §9): the one place it changes its code.
PROPOSALS_MOUNT = "/proposals"
WORKSPACE = f"{CODE_MOUNT}/workspace"

# The LLM proxy's path per provider: `/<provider>/...` is forwarded to the
# provider's base URL (OpenAI and OpenRouter clients expect the `/v1` in it).
PROXY_BASES = {
    "anthropic": f"{LLM_PROXY}/anthropic",
    "openai": f"{LLM_PROXY}/openai/v1",
    "gemini": f"{LLM_PROXY}/gemini",
    "openrouter": f"{LLM_PROXY}/openrouter/v1",
}

# OpenClaw's provider ids (and `api` kinds) mapped onto the proxy's providers.
_OPENCLAW_PROVIDER_IDS = {
    "anthropic": "anthropic",
    "openai": "openai",
    "openai-codex": "openai",
    "google": "gemini",
    "gemini": "gemini",
    "google-gemini": "gemini",
    "openrouter": "openrouter",
}
_OPENCLAW_API_KINDS = {
    "anthropic-messages": "anthropic",
    "openai-completions": "openai",
    "openai-responses": "openai",
    "google-generative-ai": "gemini",
}
# Providers the wiring adds when the config names none, so a fresh OpenClaw
# state talks to the proxy from its first start.
_DEFAULT_OPENCLAW_PROVIDERS = {
    "anthropic": "anthropic-messages",
    "openai": "openai-completions",
}


def node_heap_mb(memory_mb: int) -> int:
    """V8's old-space cap: below the container's memory limit, so that Node
    collects garbage before the kernel's OOM killer ends the gateway."""
    return max(64, min(memory_mb - 256, int(memory_mb * 0.75)))


def proxy_provider_for(provider_id: str, provider: dict[str, Any]) -> str | None:
    """Which of the proxy's providers an OpenClaw provider entry talks to."""
    api = provider.get("api")
    if isinstance(api, str) and api in _OPENCLAW_API_KINDS:
        return _OPENCLAW_API_KINDS[api]
    return _OPENCLAW_PROVIDER_IDS.get(provider_id)


def gateway_environment(
    kind: str,
    *,
    bot: str,
    gateway_env: dict[str, str],
    memory_mb: int,
) -> dict[str, str]:
    """The gateway container's environment.

    `gateway_env` is the bot's `gateway.env` (what the gateway may see: its
    proxy token, its UI token, anything the operator added); its entries are
    passed through, and the wiring below wins over them.
    """
    token = gateway_env.get("CF_PROXY_TOKEN", "")
    env = dict(gateway_env)
    env.update(
        {
            "CF_BOT": bot,
            "HOME": "/tmp",  # the root filesystem is read-only
            "HTTP_PROXY": EGRESS_PROXY,
            "HTTPS_PROXY": EGRESS_PROXY,
            "http_proxy": EGRESS_PROXY,
            "https_proxy": EGRESS_PROXY,
            "NO_PROXY": "llm-proxy,localhost,127.0.0.1",
            "no_proxy": "llm-proxy,localhost,127.0.0.1",
            "OPENCLAW_PROXY_URL": EGRESS_PROXY,
            "NODE_EXTRA_CA_CERTS": CA_PEM,
            "SSL_CERT_FILE": CA_BUNDLE,
            "REQUESTS_CA_BUNDLE": CA_BUNDLE,
            "ANTHROPIC_BASE_URL": PROXY_BASES["anthropic"],
            "OPENAI_BASE_URL": PROXY_BASES["openai"],
            "GEMINI_API_BASE": PROXY_BASES["gemini"],
            "GOOGLE_GEMINI_BASE_URL": PROXY_BASES["gemini"],
            "OPENROUTER_BASE_URL": PROXY_BASES["openrouter"],
            "ANTHROPIC_API_KEY": token,
            "OPENAI_API_KEY": token,
            "GEMINI_API_KEY": token,
            "OPENROUTER_API_KEY": token,
            "OPENCLAW_DISABLE_BONJOUR": "1",
            "NODE_OPTIONS": f"--max-old-space-size={node_heap_mb(memory_mb)}",
        }
    )
    if kind == "openclaw":
        env["OPENCLAW_STATE_DIR"] = STATE_MOUNT
        env["OPENCLAW_CONFIG_PATH"] = f"{STATE_MOUNT}/openclaw.json"
        env["OPENCLAW_GATEWAY_PORT"] = str(GATEWAY_PORT)
    return env


def wire_openclaw_config(
    config: dict[str, Any],
    *,
    proxy_token: str,
    gateway_token: str,
    workspace: str | None = WORKSPACE,
) -> dict[str, Any]:
    """`openclaw.json` with every provider pointed at the LLM proxy (the
    bot's proxy token as its key), the egress proxy as `proxy.proxyUrl`, the
    gateway in local mode behind token auth, and OpenClaw's workspace at
    `workspace` (the approved tree, read-only but for its writable paths in
    both runtimes; None keeps the config's own). Other keys are kept."""
    out = copy.deepcopy(config)
    models = out.setdefault("models", {})
    if not isinstance(models, dict):
        models = out["models"] = {}
    providers = models.setdefault("providers", {})
    if not isinstance(providers, dict):
        providers = models["providers"] = {}
    if not providers:
        for pid, api in _DEFAULT_OPENCLAW_PROVIDERS.items():
            providers[pid] = {"api": api}
    for pid, provider in list(providers.items()):
        if not isinstance(provider, dict):
            provider = providers[pid] = {}
        target = proxy_provider_for(pid, provider)
        if target is None:
            continue  # a provider the proxy does not serve; egress still holds it
        provider["baseUrl"] = PROXY_BASES[target]
        provider["apiKey"] = proxy_token

    proxy = out.setdefault("proxy", {})
    if not isinstance(proxy, dict):
        proxy = out["proxy"] = {}
    proxy["proxyUrl"] = EGRESS_PROXY

    gateway = out.setdefault("gateway", {})
    if not isinstance(gateway, dict):
        gateway = out["gateway"] = {}
    gateway["mode"] = "local"
    gateway["port"] = GATEWAY_PORT
    gateway["bind"] = "lan"  # the front reaches it over the internal network
    auth = gateway.setdefault("auth", {})
    if not isinstance(auth, dict):
        auth = gateway["auth"] = {}
    auth["mode"] = "token"
    auth["token"] = gateway_token

    if workspace is None:
        return out
    # OpenClaw's workspace is the approved tree (read-only but for its
    # writable paths); the agent proposes changes under PROPOSALS_MOUNT.
    agents = out.setdefault("agents", {})
    if not isinstance(agents, dict):
        agents = out["agents"] = {}
    defaults = agents.setdefault("defaults", {})
    if not isinstance(defaults, dict):
        defaults = agents["defaults"] = {}
    defaults["workspace"] = workspace
    return out


def wire_models_json(data: dict[str, Any], *, proxy_token: str) -> dict[str, Any]:
    """A per-agent `agents/<id>/agent/models.json`: a non-empty `baseUrl` there
    wins over `openclaw.json`, so each provider's is rewritten too."""
    out = copy.deepcopy(data)
    providers = out.get("providers")
    if not isinstance(providers, dict):
        return out
    for pid, provider in providers.items():
        if not isinstance(provider, dict):
            continue
        target = proxy_provider_for(pid, provider)
        if target is None:
            continue
        provider["baseUrl"] = PROXY_BASES[target]
        if "apiKey" in provider:
            provider["apiKey"] = proxy_token
    return out
