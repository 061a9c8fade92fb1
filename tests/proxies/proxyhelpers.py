"""Constants and small helpers the proxy tests share (imported by name; the
fixtures themselves live in conftest.py)."""

from __future__ import annotations

import datetime
import json
import ssl
from pathlib import Path
from typing import Any

from aiohttp import web

ANTHROPIC_KEY = "sk-ant-api03-" + "K" * 40 + "real"
OPENAI_KEY = "sk-proj-" + "O" * 40 + "real"
GEMINI_KEY = "AIza" + "G" * 35
OPENROUTER_KEY = "sk-or-v1-" + "0123456789abcdef" * 4
TOKEN = "cf-proxy-token-" + "t" * 24
PROVIDERS_ENV = (
    f"ANTHROPIC_API_KEY={ANTHROPIC_KEY}\nOPENAI_API_KEY={OPENAI_KEY}\n"
    f"GEMINI_API_KEY={GEMINI_KEY}\nOPENROUTER_API_KEY={OPENROUTER_KEY}\n"
)


def anthropic_body(stream: bool = False, text: str = "hello there") -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }


def openai_body(
    stream: bool = False, include_usage: bool = True, text: str = "hi"
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
        if include_usage:
            body["stream_options"] = {"include_usage": True}
    return body


def gemini_body(text: str = "hi") -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def sse_events(raw: bytes) -> list[dict[str, Any] | str]:
    """The data of each SSE event in a body (CRLF or LF framing)."""
    out: list[dict[str, Any] | str] = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = [line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:")]
        if data:
            text = b"\n".join(data).decode()
            out.append(text if text == "[DONE]" else json.loads(text))
    return out


AUTH = {"x-api-key": TOKEN, "content-type": "application/json"}
BEARER = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
GOOG = {"x-goog-api-key": TOKEN, "content-type": "application/json"}


async def start_site(
    app: web.Application, tls: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, str]:
    """Serve `app` on a free loopback port, as the console scripts do (over
    TLS for `localhost` when given a server context)."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"


def check_record_shape(rec: dict[str, Any]) -> None:
    """Every record carries every CONTRACTS §3 key, with the type it promises."""
    from cfproxies.record import REQUIRED_KEYS

    missing = set(REQUIRED_KEYS) - set(rec)
    assert not missing, f"record lacks {missing}"
    assert rec["v"] == 1
    for key in ("id", "ts", "bot", "provider", "method", "path"):
        assert isinstance(rec[key], str), key
    assert rec["ts"].endswith("Z") and rec["ts"][19] == "."
    assert rec["model"] is None or isinstance(rec["model"], str)
    assert isinstance(rec["status"], int) and not isinstance(rec["status"], bool)
    assert isinstance(rec["stream"], bool)
    for key in ("ttfb_ms", "duration_ms"):
        assert isinstance(rec[key], int | float) and rec[key] >= 0, key
    for key in ("tokens_in", "tokens_out", "cache_read", "cache_write", "req_bytes", "resp_bytes"):
        assert isinstance(rec[key], int) and rec[key] >= 0, key
    assert (
        rec["cache_read"] + rec["cache_write"] <= max(rec["tokens_in"], 0) or rec["tokens_in"] == 0
    )
    assert rec["error"] is None or isinstance(rec["error"], str)
    assert isinstance(rec["request"], dict | list | str | type(None))
    assert isinstance(rec["response"], dict | list | str | type(None))


def self_signed_tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext, Path]:
    """A server context for `localhost`, a client context trusting only it,
    and the certificate's path (for SSL_CERT_FILE)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = tmp_path / "cert.pem"
    key_pem = tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_pem, key_pem)
    client = ssl.create_default_context(cafile=str(cert_pem))
    return server, client, cert_pem
