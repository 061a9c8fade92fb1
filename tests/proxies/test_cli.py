"""The console scripts: flags and environment as CONTRACTS §8, bad input as
one line on stderr with exit status 2, and a real start answering /health."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from cfproxies.fake_llm.__main__ import main as fake_main
from cfproxies.llm_proxy import ConfigError, load_config
from cfproxies.llm_proxy.__main__ import main as proxy_main


def _base(tmp_path) -> list[str]:
    return ["--bot", "b", "--audit-dir", str(tmp_path)]


def test_flags_win_over_environment(tmp_path):
    env = {
        "CF_LISTEN": "127.0.0.1:1111",
        "CF_BOT": "from-env",
        "CF_AUDIT_DIR": str(tmp_path),
        "CF_UPSTREAM_ANTHROPIC": "http://env-upstream:1",
        "CF_PROXY_TOKEN": "env-token-123",
        "CF_DAILY_TOKEN_BUDGET": "1000",
        "CF_RPM": "60",
        "CF_BODY_CAP": "4096",
    }
    cfg = load_config(["--bot", "from-flag", "--upstream", "openai=http://flag:2/"], env)
    assert (cfg.host, cfg.port) == ("127.0.0.1", 1111)
    assert cfg.bot == "from-flag"
    assert cfg.providers["anthropic"].base_url == "http://env-upstream:1"
    assert cfg.providers["openai"].base_url == "http://flag:2"
    assert cfg.providers["gemini"].base_url == "https://generativelanguage.googleapis.com"
    assert cfg.providers["openrouter"].base_url == "https://openrouter.ai/api"
    assert cfg.token == "env-token-123"
    assert (cfg.daily_token_budget, cfg.rpm, cfg.body_cap) == (1000, 60, 4096)
    assert cfg.traffic_log == tmp_path / "traffic.jsonl"
    assert "env-token-123" not in repr(cfg)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--listen", "nope"], "expected HOST:PORT"),
        (["--upstream", "anthropic"], "expected PROVIDER=URL"),
        (["--upstream", "anthropic=ftp://x"], "http:// or https://"),
        (["--upstream", "Bad Name=http://x"], "provider name"),
        (["--rpm", "many"], "whole number"),
        (["--daily-token-budget", "0"], "at least 1"),
        (["--token", "short"], "too short"),
        (["--providers-env", "/nonexistent/providers.env"], "no such file"),
        (["--read-timeout", "-1"], "must be positive"),
        (["--bot", "Bad_Name"], "a bot name matches"),
    ],
)
def test_bad_flags_are_one_line_errors_with_status_2(tmp_path, capsys, argv, message):
    with pytest.raises(ConfigError, match=message):
        load_config([*_base(tmp_path), *argv], {})
    assert proxy_main([*_base(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cf-llm-proxy: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [([], "--bot"), (["--bot", "b"], "--audit-dir")],
)
def test_required_settings_are_named(capsys, argv, message):
    assert proxy_main(argv) == 2
    assert message in capsys.readouterr().err


def test_fake_rejects_a_bad_listen_address(capsys):
    assert fake_main(["--listen", "localhost"]) == 2
    assert (
        capsys.readouterr().err.strip() == "cf-fake-llm: --listen 'localhost': expected HOST:PORT"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_health(url: str, proc: subprocess.Popen) -> dict:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                async with session.get(f"{url}/health") as resp:
                    return await resp.json()
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    raise AssertionError("no /health answer")


async def test_console_scripts_serve_a_call_end_to_end(tmp_path):
    fake_port, proxy_port = _free_port(), _free_port()
    bindir = Path(sys.executable).parent
    fake = subprocess.Popen(
        [bindir / "cf-fake-llm", "--listen", f"127.0.0.1:{fake_port}"],
        stderr=subprocess.PIPE,
    )
    proxy = subprocess.Popen(
        [
            bindir / "cf-llm-proxy",
            "--listen",
            f"127.0.0.1:{proxy_port}",
            "--bot",
            "b",
            "--audit-dir",
            str(tmp_path / "audit"),
            "--upstream",
            f"anthropic=http://127.0.0.1:{fake_port}",
        ],
        stderr=subprocess.PIPE,
    )
    try:
        assert (await _wait_health(f"http://127.0.0.1:{fake_port}", fake))["ok"] is True
        health = await _wait_health(f"http://127.0.0.1:{proxy_port}", proxy)
        assert health["log_writable"] is True and health["bot"] == "b"
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{proxy_port}/anthropic/v1/messages",
                json={
                    "model": "m",
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": "hi"}],
                },
                headers={"x-api-key": "own-key"},
            ) as resp,
        ):
            assert resp.status == 200
        log = tmp_path / "audit" / "traffic.jsonl"
        for _ in range(100):
            if log.exists() and log.read_text().count("\n") >= 2:
                break
            await asyncio.sleep(0.02)
        assert log.read_text().count("\n") == 2  # the start line and the record
    finally:
        for proc in (proxy, fake):
            proc.terminate()
            proc.communicate(timeout=10)
    assert proxy.returncode == 0


async def test_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "cfproxies.llm_proxy",
                "--listen",
                f"127.0.0.1:{port}",
                *_base(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("cf-llm-proxy: cannot listen on")
    assert "Traceback" not in proc.stderr


async def test_sigterm_with_a_stream_in_flight_still_writes_its_record(tmp_path, fake):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cfproxies.llm_proxy",
            "--listen",
            f"127.0.0.1:{port}",
            "--bot",
            "b",
            "--audit-dir",
            str(tmp_path),
            "--upstream",
            f"anthropic={fake.url}",
        ],
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_health(url, proc)
        async with aiohttp.ClientSession() as session:
            resp = await session.post(
                f"{url}/anthropic/v1/messages",
                json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]},
                headers={"x-api-key": "own", "x-fake-hang-after": "1"},
            )
            assert b"message_start" in await resp.content.readany()
            proc.terminate()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            code = await loop.run_in_executor(None, proc.wait, 20)
            assert loop.time() - t0 < 8  # inside Docker's 10 s grace
            resp.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    assert code == 0
    lines = (tmp_path / "traffic.jsonl").read_text().splitlines()
    assert len(lines) == 2  # the call's start line, then its record
    start, rec = map(json.loads, lines)
    assert start["phase"] == "start" and rec["phase"] == "end" and start["id"] == rec["id"]
    assert rec["stream"] is True
    assert rec["error_kind"] == "shutdown"


def test_unknown_flag_is_one_line_with_status_2(capsys):
    with pytest.raises(SystemExit) as exc:
        proxy_main(["--bogus"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == "cf-llm-proxy: unrecognized arguments: --bogus (see cf-llm-proxy --help)\n"
