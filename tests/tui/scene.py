"""A small, fully deterministic fleet for the snapshot tests and for
`scripts/screenshots.py`: four bots, a day of LLM calls, a captured session,
snapshots and a gateway config; every id, time and size fixed."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from cftui.identity import recipient_of
from tests.fakes.memory_runtime import STARTED, MemoryRuntime, MemoryRuntimes
from tests.tui.tui_helpers import NOW, append_records, make_record

BOTS = ("scout", "scribe", "sentinel", "tinker")
CALLS = 240


def build_scene(root: Path) -> tuple[FleetHome, MemoryRuntime]:
    """Create the fleet home under `root` and a runtime that knows its state."""
    from cftui import snapshots
    from cftui.gateway import config as gateway_config

    home = FleetHome(root)
    for bot in BOTS:
        init_bot(home, bot)
    home.update_bot("scout", capture=True, egress_allow=("api.github.com", "pypi.org"))
    home.update_bot("scribe", egress_allow=("en.wikipedia.org",))
    home.update_bot("scout", daily_usd_budget=2.0, monthly_usd_budget=40.0)
    home.update_bot("scribe", daily_usd_budget=0.25, on_exhausted="stop")
    models = {0: "claude-sonnet-4-5", 1: "gpt-4o-mini", 2: "gemini-2.5-flash"}
    for i, bot in enumerate(BOTS[:3]):
        records = [
            make_record(n, bot=bot, model=models[(n + i) % 3], id=f"{bot}-{n:05d}")
            for n in range(CALLS // (i + 1))
        ]
        for n, record in enumerate(records):
            record.update(_cost(n, record["model"]))
        append_records(home.traffic_log(bot), records)
    _capture(home, "scout")
    state = home.state_dir("scout")
    (state / "memory.md").write_text("# scout's memory\n" + "note\n" * 200)
    gateway_config.write_config(
        home,
        "scout",
        {
            "gateway": {"port": 18789, "bind": "lan"},
            "models": {
                "providers": {
                    "anthropic": {"baseUrl": "http://llm-proxy:9090/anthropic", "apiKey": "t0k"}
                }
            },
            "proxy": {"proxyUrl": "http://egress:8888"},
        },
        reason="scene",
    )
    for label, minutes in (("nightly", 0), ("before-upgrade", 42)):
        _fix_mtimes(state)  # the archive holds mtimes: fixed ones give fixed sizes
        snapshots.create_snapshot(home, "scout", label, now=STARTED + timedelta(minutes=minutes))
    _proposals(home)
    runtime = MemoryRuntime(home, running=["scout", "scribe", "sentinel"])
    runtime.states["sentinel"]["gateway"] = "unhealthy"
    runtime.log_lines[("scout", "gateway")] = [
        "2026-11-24T06:00:01Z gateway listening on :18789",
        "2026-11-24T06:00:02Z model anthropic/claude-sonnet-4-5 via http://llm-proxy:9090",
        "2026-11-24T06:01:10Z task: summarise the open issues",
    ]
    return home, runtime


def _cost(n: int, model: str) -> dict[str, object]:
    """A price per call, as the LLM proxy records it; Gemini's unknown here
    (the scene shows unpriced calls apart from the sums)."""
    if model == "gemini-2.5-flash":
        return {"cost_usd": None, "cost_status": "unknown_model"}
    return {"cost_usd": round(0.003 + 0.0001 * (n % 7), 6)}


def _proposals(home: FleetHome) -> None:
    """What scout and scribe propose: a new skill, a changed and a removed
    file, a link out (refused), and a change scout made to its own config."""
    import json

    from cftui.gateway import config as gateway_config
    from cftui.proposal_tree import seed

    for bot in ("scout", "scribe"):
        seed.seed(home, bot)
    tree = home.proposals_dir("scout")
    skill = tree / "workspace/skills/weather/SKILL.md"
    skill.parent.mkdir(parents=True)
    skill.write_text(
        "# Weather\n\nAnswer questions about the weather.\n\n"
        "```python\ndef forecast(city: str) -> str:\n"
        '    return f"sunny in {city}"\n```\n'
    )
    soul = tree / "workspace/SOUL.md"
    soul.write_text(soul.read_text() + "\nI may install skills without asking.\n")
    (tree / "workspace/TOOLS.md").unlink()
    os.symlink("/etc/passwd", tree / "workspace/passwd")
    config = gateway_config.read_config(home, "scout")
    config["tools"] = {"exec": {"enabled": True}}
    gateway_config.config_path(home, "scout").write_text(json.dumps(config))
    notes = home.proposals_dir("scribe") / "workspace/notes.md"
    notes.write_text("reading list\n")


def _fix_mtimes(root: Path) -> None:
    stamp = STARTED.timestamp()
    for path in [root, *root.rglob("*")]:
        os.utime(path, (stamp, stamp), follow_symlinks=False)


def _capture(home: FleetHome, bot: str) -> None:
    """A real capture session: Fernet tokens, the key age-encrypted to the bot."""
    from cfproxies.egress import session as capture_session

    # A fixed key id (it names the time the session began) keeps the shots stable.
    real_key_id = capture_session.new_key_id
    capture_session.new_key_id = lambda: "20261124T063000Z-5ce0e001"
    try:
        session = capture_session.CaptureSession(
            bot, home.capture_log(bot), home.capture_keys(bot), recipient_of(home, bot)
        )
    finally:
        capture_session.new_key_id = real_key_id
    hosts = ("api.github.com", "pypi.org", "api.github.com", "example.net")
    for n in range(12):
        host = hosts[n % 4]
        refused = host == "example.net"
        session.write(
            {
                "v": 1,
                "id": f"flow-{n:04d}",
                "bot": bot,
                "k": session.key_id,
                "ts": (NOW - timedelta(minutes=30 - n)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "kind": "http",
                "method": "GET",
                "url": f"https://{host}/{'repos/acme/widgets/issues' if n % 2 else 'simple/requests/'}",
                "host": host,
                "status": 403 if refused else 200,
                "request": {"headers": {"user-agent": "openclaw/1.0"}},
                "response": {
                    "headers": {"content-type": "application/json"},
                    "bytes": 1200 + n * 37,
                    "text": "{}",
                },
                "duration_ms": 80.0 + n,
                **({"refused": True} if refused else {}),
            }
        )
    session.close()


def scene_app(root: Path, **options):
    """The app on the scene, with a frozen clock."""
    from cftui.tui.app import make_app
    from tests.tui.tui_helpers import frozen_clock

    home, runtime = build_scene(root)
    options.setdefault("clock", frozen_clock)
    options.setdefault("status_interval", 3600)
    return make_app(home, MemoryRuntimes(home, runtime), **options), home, runtime
