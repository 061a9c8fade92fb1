"""traffic.jsonl: private, one whole line per call, and a log that cannot be
written never stops a call, shows on /health and stderr, and leaves no torn line."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import stat
import subprocess
import sys

import aiohttp
from cfproxies.record import parse_record_line

from tests.proxies.proxyhelpers import AUTH, PROVIDERS_ENV, TOKEN, anthropic_body


async def _post(client, proxy_url, **body_kw):
    async with client.post(
        f"{proxy_url}/anthropic/v1/messages", json=anthropic_body(**body_kw), headers=AUTH
    ) as resp:
        await resp.read()
        return resp.status


async def _health(client, proxy_url):
    async with client.get(f"{proxy_url}/health") as resp:
        assert resp.status == 200
        return await resp.json()


async def test_log_file_is_created_private(start_proxy, client, tmp_path):
    proxy = await start_proxy()
    assert await _post(client, proxy.url) == 200
    await proxy.wait_records(1)
    assert stat.S_IMODE(proxy.log_path.stat().st_mode) == 0o600


async def test_unwritable_log_does_not_stop_calls_and_shows_on_health(
    start_proxy, client, audit_dir, capfd
):
    (audit_dir / "traffic.jsonl").mkdir()  # whatever opens it will fail
    proxy = await start_proxy()
    assert await _post(client, proxy.url) == 200
    health = await _health(client, proxy.url)
    assert health["log_writable"] is False
    assert "Is a directory" in health["last_write_error"]
    assert "traffic log" in capfd.readouterr().err
    # Once the operator fixes it, records flow again without a restart.
    (audit_dir / "traffic.jsonl").rmdir()
    assert await _post(client, proxy.url) == 200
    assert len(await proxy.wait_records(1)) == 1
    assert (await _health(client, proxy.url))["log_writable"] is True


async def test_disk_full_does_not_stop_calls_and_shows_on_health(start_proxy, client, audit_dir):
    (audit_dir / "traffic.jsonl").symlink_to("/dev/full")
    proxy = await start_proxy()
    assert await _post(client, proxy.url) == 200
    assert await _post(client, proxy.url, stream=True) == 200
    health = await _health(client, proxy.url)
    assert health["log_writable"] is False
    assert "No space left" in health["last_write_error"]
    assert health["log"]["write_failures"] >= 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_write_cut_short_by_a_full_disk_leaves_no_partial_line(fake, tmp_path, client):
    """A file-size limit makes the kernel write only part of a record, exactly
    as a disk filling up mid-line does; the proxy must take the fragment back."""
    audit = tmp_path / "audit"
    audit.mkdir()
    env_file = tmp_path / "providers.env"
    env_file.write_text(PROVIDERS_ENV)
    limit = 6000
    port = _free_port()

    def cap_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

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
            str(audit),
            "--providers-env",
            str(env_file),
            "--token",
            TOKEN,
            "--upstream",
            f"anthropic={fake.url}",
        ],
        preexec_fn=cap_file_size,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                await _health(client, url)
                break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        statuses = [await _post(client, url, text="word " * 150) for _ in range(12)]
        assert statuses == [200] * 12  # every call went through, log or no log
        health = await _health(client, url)
        assert health["log"]["write_failures"] >= 1
        assert health["log"]["records_written"] >= 1
        data = (audit / "traffic.jsonl").read_bytes()
        assert data.endswith(b"\n")
        lines = data.split(b"\n")[:-1]
        assert len(lines) == health["log"]["records_written"]
        assert all(parse_record_line(line) is not None for line in lines)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert b"short write" in err  # the kernel did cut a record, and it was taken back


async def test_bodies_over_the_cap_are_truncated_and_flagged(start_proxy, client):
    proxy = await start_proxy("--body-cap", "1000")
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages",
        json=anthropic_body(text="y" * 5000),
        headers={**AUTH, "x-fake-reply-bytes": "8000"},
    ) as resp:
        assert len((await resp.json())["content"][0]["text"]) == 8000
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages",
        json=anthropic_body(stream=True),
        headers={**AUTH, "x-fake-reply-bytes": "8000", "x-fake-chunks": "16"},
    ) as resp:
        await resp.read()
    plain, streamed = await proxy.wait_records(2)
    assert plain["truncated"] is True
    assert isinstance(plain["request"], str) and len(plain["request"].encode()) <= 1000
    assert isinstance(plain["response"], str) and len(plain["response"].encode()) <= 1000
    assert plain["req_bytes"] > 5000 and plain["resp_bytes"] > 8000
    assert plain["tokens_out"] > 0  # usage is read from the whole body, not the kept part
    assert streamed["truncated"] is True
    assert len(streamed["response"]["text"]) == 1000
    assert streamed["usage_status"] == "complete"
    for line in proxy.log_path.read_bytes().splitlines():
        assert len(line) < 5000


async def test_records_are_whole_lines_under_concurrent_writers(start_proxy, client):
    a = await start_proxy()
    b = await start_proxy()  # two proxies sharing one file, as after a restart overlap
    await asyncio.gather(
        *(_post(client, p.url, stream=i % 2 == 0) for i, p in enumerate([a, b] * 20))
    )
    recs = await a.wait_records(40)
    assert len(recs) == 40
    assert os.path.getsize(a.log_path) == sum(
        len(x) + 1 for x in a.log_path.read_bytes().splitlines()
    )


async def test_request_over_the_size_limit_answers_413_and_is_recorded(start_proxy, fake, client):
    proxy = await start_proxy(max_request_bytes=10_000)
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages", json=anthropic_body(text="z" * 20_000), headers=AUTH
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"]["type"] == "request_too_large"
    assert fake.requests() == []
    (rec,) = await proxy.wait_records(1)
    assert rec["status"] == 413 and rec["error_kind"] == "request_too_large"


async def test_large_bodies_are_recorded_whole_and_scrubbed_off_the_event_loop(start_proxy, client):
    proxy = await start_proxy()
    secret = "sk-ant-api03-" + "s" * 40
    text = ("lots of context " * 8000) + secret
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages",
        json=anthropic_body(text=text),
        headers={**AUTH, "x-fake-reply-bytes": "100000"},
    ) as resp:
        assert resp.status == 200
    (rec,) = await proxy.wait_records(1)
    assert secret not in proxy.log_path.read_text()
    assert rec["scrubbed"] >= 1
    assert rec["tokens_in"] > 8000


async def test_plain_body_too_large_to_hold_is_relayed_in_chunks_and_still_recorded(
    start_proxy, client
):
    proxy = await start_proxy()
    async with client.post(
        f"{proxy.url}/anthropic/v1/messages",
        json=anthropic_body(),
        headers={**AUTH, "x-fake-reply-bytes": str(9 * 1024 * 1024)},
    ) as resp:
        assert resp.status == 200
        body = await resp.read()
    assert len(body) > 9 * 1024 * 1024
    (rec,) = await proxy.wait_records(1)
    assert rec["resp_bytes"] == len(body)
    assert rec["truncated"] is True and rec["stream"] is False
    assert rec["tokens_out"] > 0
