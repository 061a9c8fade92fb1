"""What the proxy knows about each provider: where it lives, which key it
needs, the header that carries it, and which wire format its answers use."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    name: str
    base_url: str
    key_env: str
    auth: str  # "x-api-key", "bearer" or "x-goog-api-key"
    dialect: str | None  # "anthropic", "openai", "gemini"; None: guessed from the path


KNOWN: dict[str, Provider] = {
    "anthropic": Provider(
        "anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY", "x-api-key", "anthropic"
    ),
    "openai": Provider("openai", "https://api.openai.com", "OPENAI_API_KEY", "bearer", "openai"),
    "gemini": Provider(
        "gemini",
        "https://generativelanguage.googleapis.com",
        "GEMINI_API_KEY",
        "x-goog-api-key",
        "gemini",
    ),
    "openrouter": Provider(
        "openrouter", "https://openrouter.ai/api", "OPENROUTER_API_KEY", "bearer", "openai"
    ),
}


def key_env_for(name: str) -> str:
    """`providers.env` variable of a provider that only `--upstream` names."""
    return name.upper().replace("-", "_") + "_API_KEY"


def provider_for(name: str, base_url: str) -> Provider:
    """A known provider at `base_url`, or an OpenAI-style one (Bearer key)."""
    known = KNOWN.get(name)
    if known is not None:
        return Provider(known.name, base_url, known.key_env, known.auth, known.dialect)
    return Provider(name, base_url, key_env_for(name), "bearer", None)


def dialect_for(provider: Provider, path: str) -> str:
    """The wire format of a call; for unknown providers, guessed from its path."""
    if provider.dialect:
        return provider.dialect
    if path.endswith("/messages"):
        return "anthropic"
    if "generateContent" in path:
        return "gemini"
    return "openai"


def upstream_path(provider: Provider, tail: str) -> str:
    """The path to ask the provider for. OpenAI-style clients put `/v1` in
    their base URL (`OPENAI_BASE_URL=.../v1`), others do not; a known
    OpenAI-style provider gets the `/v1` it needs either way."""
    if (
        provider.name in KNOWN
        and provider.dialect == "openai"
        and not tail.startswith("/v1")
        and not provider.base_url.endswith("/v1")
    ):
        return "/v1" + tail
    return tail
