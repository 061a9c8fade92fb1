"""Issue #15, leak 5: request bytes in flight are bounded across calls (413
for one body over the cap, 503 when all calls together hold the budget),
and a call is in traffic.jsonl from its start, so a proxy killed mid-call
leaves a "started, never finished" line that the next proxy charges."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.proxies.proxyhelpers import AUTH, anthropic_body

START_PREFIX = b'{"v":1,"phase":"start","id":"'  # how the proxy writes a start line


async def _post(client: aiohttp.ClientSession, proxy, body: dict, **headers: str):
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=body, headers={**AUTH, **headers}
    ) as resp:
        return resp.status, await resp.read()


async def test_request_bytes_in_flight_are_bounded_across_calls(start_proxy, fake, client):
    proxy = await start_proxy("--max-request-bytes", "100000", "--max-inflight-bytes", "150000")
    big = anthropic_body(text="q" * 90_000)
    slow = asyncio.create_task(_post(client, proxy, big, **{"x-fake-delay-ms": "400"}))
    for _ in range(200):  # until the slow call holds its bytes
        if proxy.state.inflight_bytes:
            break
        await asyncio.sleep(0.005)
    assert proxy.state.inflight_bytes > 90_000
    status, raw = await _post(client, proxy, big)
    assert status == 503 and raw.count(b"\n") == 0
    assert json.loads(raw)["error"]["type"] == "overloaded"
    assert (await _post(client, proxy, anthropic_body()))[0] == 200  # a small one still fits
    assert (await slow)[0] == 200
    await proxy.wait_records(3)
    for _ in range(200):  # the big record is sealed in the writer thread, then released
        if proxy.state.inflight_bytes == 0:
            break
        await asyncio.sleep(0.005)
    async with client.get(f"{proxy.url}/health") as resp:
        assert (await resp.json())["inflight_bytes"] == 0
    assert (await _post(client, proxy, big))[0] == 200
    statuses = [r["status"] for r in await proxy.wait_records(4)]
    assert sorted(statuses) == [200, 200, 200, 503]
    assert len(fake.requests()) == 3  # the refused one never went upstream


async def test_one_body_over_the_cap_is_refused_before_it_is_read(start_proxy, fake, client):
    proxy = await start_proxy("--max-request-bytes", "1000")
    status, raw = await _post(client, proxy, anthropic_body(text="z" * 5000))
    assert status == 413 and json.loads(raw)["error"]["type"] == "request_too_large"

    async def chunked():  # no Content-Length: counted as it is read
        for _ in range(5):
            yield b"y" * 500

    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", data=chunked(), headers=AUTH
    ) as resp:
        assert resp.status == 413
    assert fake.requests() == []
    assert proxy.state.inflight_bytes == 0


def test_the_defaults_fit_a_512_mib_container_and_bad_values_are_one_line(tmp_path):
    from cfproxies.llm_proxy import ConfigError, load_config

    cfg = load_config(["--bot", "b", "--audit-dir", str(tmp_path)], {})
    assert cfg.max_request_bytes == 32 << 20 and cfg.max_inflight_bytes == 128 << 20
    env = {"CF_MAX_REQUEST_BYTES": "2000", "CF_MAX_INFLIGHT_BYTES": "5000"}
    cfg = load_config(["--bot", "b", "--audit-dir", str(tmp_path)], env)
    assert (cfg.max_request_bytes, cfg.max_inflight_bytes) == (2000, 5000)
    try:
        load_config(["--bot", "b", "--audit-dir", str(tmp_path), "--max-inflight-bytes", "10"], {})
    except ConfigError as exc:
        assert "below --max-request-bytes" in str(exc)
    else:
        raise AssertionError("accepted an in-flight budget smaller than one body")


async def test_a_call_is_in_the_log_from_its_start(start_proxy, client):
    proxy = await start_proxy()
    body = anthropic_body(stream=True)
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages",
        json=body,
        headers={**AUTH, "x-fake-hang-after": "1"},
    ) as resp:
        assert resp.status == 200
        assert b"message_start" in await resp.content.readany()
        (start,) = proxy.starts()  # the call is still running
        assert proxy.records() == []
        assert proxy.log_path.read_bytes().startswith(START_PREFIX)
        assert start["status"] == 0 and start["model"] == "claude-sonnet-4-5"
        assert start["stream"] is True and start["req_bytes"] > 0
        assert start["tokens_est"] == 64 + start["req_bytes"] // 4  # max_tokens + prompt
    (end,) = await proxy.wait_records(1)
    assert end["id"] == start["id"] and end["phase"] == "end"


def test_the_estimate_is_the_asked_limit_plus_the_prompt():
    from cfproxies.record import estimate_tokens

    assert estimate_tokens({"max_tokens": 100}, 400) == 200
    assert estimate_tokens({"max_completion_tokens": 7}, 0) == 7
    assert estimate_tokens({"generationConfig": {"maxOutputTokens": 9}}, 8) == 11
    assert estimate_tokens({"max_tokens": "lots"}, 0) == 4096  # none stated: the default
    assert estimate_tokens(None, 40) == 4106


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_killed_proxy_leaves_a_started_call_that_the_next_proxy_charges(
    start_proxy, fake, client, audit_dir: Path
):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cfproxies.llm_proxy",
            "--listen",
            f"127.0.0.1:{port}",
            "--bot",
            "bot1",
            "--audit-dir",
            str(audit_dir),
            "--upstream",
            f"anthropic={fake.url}",
        ],
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                async with client.get(f"{url}/health") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        body = {**anthropic_body(stream=True), "max_tokens": 5000}
        resp = await client.post(
            f"{url}/anthropic/v1/messages",
            json=body,
            headers={"x-api-key": "own", "x-fake-hang-after": "1"},
        )
        assert b"message_start" in await resp.content.readany()
        proc.send_signal(signal.SIGKILL)  # the OOM killer's way: no shutdown, no record
        proc.wait(10)
        resp.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    lines = (audit_dir / "traffic.jsonl").read_bytes().splitlines()
    assert len(lines) == 1 and lines[0].startswith(START_PREFIX)
    est = json.loads(lines[0])["tokens_est"]
    assert est >= 5000
    proxy = await start_proxy("--daily-token-budget", str(est))
    async with client.get(f"{proxy.url}/health") as resp:
        assert (await resp.json())["budget"]["tokens_today"] == est
    assert (await _post(client, proxy, anthropic_body()))[0] == 429
