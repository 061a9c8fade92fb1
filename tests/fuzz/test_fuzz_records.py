"""A request body nested past Python's recursion limit (found by fuzzing).

orjson parses up to 1024 levels; the scrubber's walk and the stdlib encoder
the record falls back to (orjson writes 255 levels at most) both recursed
until RecursionError, so the proxy answered 500 after forwarding the call,
and the call left no record: an agent could make calls the audit never saw.
Now the deep value is replaced by a marker and the record is written.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from cfproxies.jsoncodec import dumps_line, loads
from cfproxies.jsonl import encode_line
from cfproxies.record import parse_record_line
from cfproxies.scrub import Scrubber

from tests.proxies.proxyhelpers import PROVIDERS_ENV, TOKEN, start_site

DEPTH = 1000  # under orjson's 1024, over the interpreter's default limit


def _deep(depth: int = DEPTH, leaf: str = '"x"') -> bytes:
    return b'{"a":' * depth + leaf.encode() + b"}" * depth


def test_a_record_with_a_too_deep_value_is_written_with_a_marker() -> None:
    record = {"v": 1, "id": "c1", "request": loads(_deep()), "model": "m"}
    for line in (encode_line(record), dumps_line(record)):
        back = parse_record_line(line)
        assert back is not None and back["id"] == "c1" and back["model"] == "m"
        assert back["request"] == {"truncated": True, "reason": "nested too deep to record"}


def test_scrubbing_a_too_deep_body_keeps_none_of_it() -> None:
    secret = "sk-ant-api03-" + "S" * 40
    scrubber = Scrubber.from_file(None, [secret])
    raw = _deep(leaf=json.dumps(secret))
    scrubbed, _count = scrubber.scrub(loads(raw), raw)
    assert scrubbed == {"truncated": True, "reason": "nested too deep to scrub"}
    assert secret not in json.dumps(scrubbed)


async def test_a_too_deep_request_through_the_proxy_leaves_a_record(tmp_path: Path) -> None:
    from cfproxies.fake_llm.app import make_app as make_fake
    from cfproxies.llm_proxy.app import make_app
    from cfproxies.llm_proxy.config import load_config

    audit = tmp_path / "audit"
    audit.mkdir(mode=0o700)
    env = tmp_path / "providers.env"
    env.write_text(PROVIDERS_ENV)
    env.chmod(0o600)
    fake_runner, fake_url = await start_site(make_fake())
    argv = ["--listen", "127.0.0.1:0", "--bot", "b", "--audit-dir", str(audit)]
    argv += ["--providers-env", str(env), "--upstream", f"anthropic={fake_url}", "--token", TOKEN]
    proxy_runner, proxy_url = await start_site(make_app(load_config(argv, {})))
    body = b'{"model":"claude","max_tokens":5,"messages":[],"x":' + _deep() + b"}"
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{proxy_url}/anthropic/v1/messages",
                data=body,
                headers={"x-api-key": TOKEN, "content-type": "application/json"},
            ) as resp,
        ):
            await resp.read()
        log = audit / "traffic.jsonl"

        def ends() -> list[dict]:
            lines = log.read_bytes().splitlines() if log.exists() else []
            recs = [parse_record_line(line) for line in lines]
            return [r for r in recs if r is not None and r.get("phase") == "end"]

        for _ in range(250):
            if ends():
                break
            await asyncio.sleep(0.02)
        (rec,) = ends()  # the call's end line (its start line came first)
        assert rec["bot"] == "b" and rec["path"] == "/anthropic/v1/messages"
    finally:
        await proxy_runner.cleanup()
        await fake_runner.cleanup()
