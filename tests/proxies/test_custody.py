"""Key custody: the gateway presents the bot's token, the provider gets the
real key from providers.env in its own header, and the token never leaves."""

from __future__ import annotations

import pytest

from tests.proxies.proxyhelpers import (
    ANTHROPIC_KEY,
    AUTH,
    BEARER,
    GEMINI_KEY,
    GOOG,
    OPENAI_KEY,
    OPENROUTER_KEY,
    TOKEN,
    anthropic_body,
    gemini_body,
    openai_body,
)

CASES = [
    ("anthropic", "/v1/messages", AUTH, anthropic_body(), "x-api-key", ANTHROPIC_KEY),
    (
        "openai",
        "/v1/chat/completions",
        BEARER,
        openai_body(),
        "authorization",
        f"Bearer {OPENAI_KEY}",
    ),
    (
        "openrouter",
        "/v1/chat/completions",
        BEARER,
        openai_body(),
        "authorization",
        f"Bearer {OPENROUTER_KEY}",
    ),
    (
        "gemini",
        "/v1beta/models/gemini-2.5-flash:generateContent",
        GOOG,
        gemini_body(),
        "x-goog-api-key",
        GEMINI_KEY,
    ),
]


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@pytest.mark.parametrize(("provider", "path", "auth", "body", "header", "value"), CASES)
async def test_upstream_receives_the_real_key_in_the_providers_header(
    start_proxy, fake, client, provider, path, auth, body, header, value
):
    proxy = await start_proxy()
    async with client.post(f"{proxy.url}/{provider}{path}", json=body, headers=auth) as resp:
        assert resp.status == 200, await resp.text()
    seen = _lower(fake.requests()[-1]["headers"])
    assert seen[header] == value
    assert TOKEN not in str(fake.requests()[-1])
    # Only the provider's own credential header reaches it.
    others = {"x-api-key", "authorization", "x-goog-api-key"} - {header}
    assert not others & set(seen)
    (rec,) = await proxy.wait_records(1)
    assert value.split()[-1] not in proxy.log_path.read_text()
    assert TOKEN not in proxy.log_path.read_text()
    assert rec["status"] == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": "wrong-token-123456"},
        {"authorization": "Bearer " + TOKEN[:-1]},
        {"authorization": TOKEN},  # no scheme
    ],
)
async def test_without_the_token_the_proxy_answers_401(start_proxy, fake, client, headers):
    proxy = await start_proxy()
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(), headers=headers
    ) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["type"] == "authentication_error"
    assert fake.requests() == []
    (rec,) = await proxy.wait_records(1)
    assert rec["status"] == 401 and rec["error_kind"] == "auth"


async def test_gemini_token_in_query_key_is_swapped_and_never_logged(start_proxy, fake, client):
    proxy = await start_proxy()
    url = f"{proxy.url}/gemini/v1beta/models/gemini-2.5-flash:generateContent?key={TOKEN}&x=1"
    async with client.post(url, json=gemini_body()) as resp:
        assert resp.status == 200
    seen = fake.requests()[-1]
    assert seen["query"] == "x=1"
    assert _lower(seen["headers"])["x-goog-api-key"] == GEMINI_KEY
    (rec,) = await proxy.wait_records(1)
    assert rec["path"].endswith("?key=[REDACTED]&x=1")
    assert rec["model"] == "gemini-2.5-flash"
    assert TOKEN not in proxy.log_path.read_text()


async def test_provider_without_a_key_answers_503_naming_the_variable(
    start_proxy, fake, client, providers_env
):
    providers_env.write_text(f"ANTHROPIC_API_KEY={ANTHROPIC_KEY}\n")
    proxy = await start_proxy()
    async with client.post(
        f"{proxy.url}/openai/v1/chat/completions", json=openai_body(), headers=BEARER
    ) as resp:
        assert resp.status == 503
        error = (await resp.json())["error"]
    assert "OPENAI_API_KEY" in error["message"]
    assert error["variable"] == "OPENAI_API_KEY"
    assert fake.requests() == []
    (rec,) = await proxy.wait_records(1)
    assert rec["status"] == 503 and "OPENAI_API_KEY" in rec["error"]


async def test_without_a_token_the_gateways_own_credential_passes_through(
    start_proxy, fake, client
):
    proxy = await start_proxy(token=False)
    own = "sk-ant-api03-" + "g" * 40
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(), headers={"x-api-key": own}
    ) as resp:
        assert resp.status == 200
    assert _lower(fake.requests()[-1]["headers"])["x-api-key"] == own
    await proxy.wait_records(1)
    assert own not in proxy.log_path.read_text()  # scrubbed by shape


async def test_health_says_which_keys_are_configured_without_showing_them(start_proxy, client):
    proxy = await start_proxy()
    async with client.get(f"{proxy.url}/health") as resp:
        assert resp.status == 200
        text = await resp.text()
        health = await resp.json()
    assert health["providers"]["anthropic"]["key_configured"] is True
    assert health["token_required"] is True
    for secret in (ANTHROPIC_KEY, OPENAI_KEY, GEMINI_KEY, OPENROUTER_KEY, TOKEN):
        assert secret not in text
