"""What the agent wrote reaches the operator's terminal inert (issue 15, leak 7).

The agent chooses model names, log lines, URLs the egress sees and every
string of its own state. Printed raw, a newline forges an output line and
an escape sequence drives the operator's terminal (moves the cursor, sets
the window title, writes the clipboard with OSC 52); shown as Rich markup,
`[link=...]` or `[bold red]` restyle the console. Each test plays the agent
with one hostile record and reads what the operator's screen would get.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import pytest
from cfproxies.egress.session import CaptureSession
from cfproxies.record import new_record

from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from cftui.identity import recipient_of
from cftui.inert import inert, inert_json, inert_json_text
from tests.fakes.memory_runtime import MemoryRuntime, MemoryRuntimes
from tests.tui.tui_helpers import frozen_clock, wait_until

OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"  # writes the operator's clipboard
CURSOR_UP = "\x1b[2A\x1b[2K"  # moves up and erases: hides the lines above
FORGED = "\n2026-12-01T00:00:00.000Z  red  anthropic  claude  200  forged line"
HOSTILE_MODEL = f"claude{CURSOR_UP}{OSC52}\x9b31m\u202egnp.exe\u2028x{FORGED}"
MARKUP_MODEL = "[bold red]x[/][link=https://evil.example]click[/link]"

# What must never reach a terminal: C0 (tab and newline included), DEL,
# C1, bidi overrides and isolates, zero-width and line/paragraph separators.
UNSAFE = {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))} | set(
    "\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029\ufeff"
)


def assert_inert(text: str) -> None:
    bad = sorted({hex(ord(c)) for c in text if c in UNSAFE})
    assert not bad, f"raw control/format characters reach the terminal: {bad}"


def lines_inert(out: str) -> list[str]:
    lines = out.splitlines()
    for line in lines:
        assert_inert(line)
    return lines


# --- the helper ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\nb", "a\\nb"),
        ("a\r\tb", "a\\r\\tb"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x7f\x85\x9b", "\\x7f\\x85\\x9b"),
        ("\u202eevil", "\\u202eevil"),
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("lone \ud800", "lone \\ud800"),
    ],
)
def test_inert_escapes_controls_visibly(raw: str, shown: str) -> None:
    assert inert(raw) == shown


@pytest.mark.parametrize(
    "text", ["claude-sonnet-4-5", "café ünï 日本語 🦀", "a\u00a0b", "[b]x[/b]"]
)
def test_inert_leaves_printable_text_alone(text: str) -> None:
    assert inert(text) == text


def test_inert_multiline_keeps_only_newlines() -> None:
    assert inert("a\nb\x1b\rc", multiline=True) == "a\nb\\x1b\\rc"


def test_inert_json_parses_back_to_the_same_value() -> None:
    value = {"model": HOSTILE_MODEL, "tag": "\U000e0041", "n": [1, "\x85"]}
    text = inert_json(value)
    assert_inert(text)
    assert json.loads(text) == value
    pretty = inert_json_text(json.dumps(value, indent=2, ensure_ascii=False))
    assert json.loads(pretty) == value
    for line in pretty.split("\n"):
        assert_inert(line)


# --- the CLI ------------------------------------------------------------------


def hostile_record(bot: str, **over: object) -> dict:
    rec = new_record(
        bot=bot, provider="anthropic", method="POST", path="/v1/messages", epoch=time.time()
    )
    rec.update(
        model=HOSTILE_MODEL,
        status=200,
        error=f"boom{OSC52}\nsecond line",
        response={"text": f"hi{CURSOR_UP}\x9b2J\u202eevil\u2028"},
    )
    rec.update(over)
    return rec


def write_traffic(home: FleetHome, bot: str, records: list[dict]) -> None:
    path = home.traffic_log(bot)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        for rec in records:
            f.write(json.dumps(rec).encode() + b"\n")


@pytest.fixture
def red(home: FleetHome) -> str:
    init_bot(home, "red")
    return "red"


def test_traffic_prints_one_inert_line_per_hostile_call(home, red, cli) -> None:
    write_traffic(home, red, [hostile_record(red), hostile_record(red, model=MARKUP_MODEL)])
    res = cli("traffic", red)
    assert res.code == 0, res.err
    lines = lines_inert(res.out)
    assert len(lines) == 2  # no forged line
    assert "\\x1b]52;c;" in lines[0] and "\\u202e" in lines[0] and "\\n2026" in lines[0]
    assert MARKUP_MODEL in lines[1]


def test_traffic_json_is_inert_and_parses_back(home, red, cli) -> None:
    rec = hostile_record(red)
    write_traffic(home, red, [rec])
    res = cli("traffic", red, "--json")
    assert res.code == 0, res.err
    (line,) = lines_inert(res.out)
    assert json.loads(line)["model"] == HOSTILE_MODEL


def test_decrypt_prints_a_hostile_flow_inert(home, red, cli) -> None:
    session = CaptureSession(
        red, home.capture_log(red), home.capture_keys(red), recipient_of(home, red)
    )
    url = f"https://a.example/{OSC52}{FORGED}"
    session.write({"v": 1, "id": "f1", "method": f"GET{CURSOR_UP}", "url": url, "status": 200})
    session.close()
    res = cli("decrypt", red)
    assert res.code == 0, res.err
    (line,) = lines_inert(res.out)
    assert "\\x1b]52;c;" in line
    res = cli("decrypt", red, "--json")
    (line,) = lines_inert(res.out)
    assert json.loads(line)["url"] == url


def test_config_show_escapes_what_json_leaves_raw(home, red, cli) -> None:
    config = home.state_dir(red) / "openclaw.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    value = {"agents": {"name": "\x9b2J\u202eevil\u2028\x7f"}}
    config.write_text(json.dumps(value, ensure_ascii=False))
    res = cli("config", red)
    assert res.code == 0, res.err
    lines_inert(res.out)
    assert json.loads(res.out) == value


def test_errors_quoting_agent_text_stay_one_inert_line(home, red, cli) -> None:
    """The JSON5 parser quotes the character it stopped at: here, an escape."""
    config = home.state_dir(red) / "openclaw.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("{a: 1 \x1b]52;c;AA\x07}")
    res = cli("config", red)
    assert res.code != 0
    (line,) = lines_inert(res.err)
    assert line.startswith("cftui: ") and "\\x1b" in line


async def test_run_prints_hostile_logs_and_calls_inert(home, red, monkeypatch) -> None:
    """`cftui --run`: a service log line and a call, both the agent's words."""
    from cftui.cli import headless

    runtime = MemoryRuntime(home)
    monkeypatch.setattr(headless, "Runtimes", lambda home: MemoryRuntimes(home, runtime))
    runtime.log_lines[(red, "gateway")] = [f"ready{CURSOR_UP}{OSC52}{FORGED}"]
    out: list[str] = []
    stop = asyncio.Event()
    bot = home.bot(red)
    runs = asyncio.create_task(
        headless.run_bots(
            home,
            [bot],
            out=out.append,
            err=out.append,
            stop=stop,
        )
    )
    deadline = asyncio.get_running_loop().time() + 10
    while not any("ready" in line for line in out):
        assert asyncio.get_running_loop().time() < deadline, out
        await asyncio.sleep(0.02)
    write_traffic(home, red, [hostile_record(red)])
    while not any("/llm]" in line for line in out):
        assert asyncio.get_running_loop().time() < deadline, out
        await asyncio.sleep(0.05)
    stop.set()
    assert await runs == 0
    lines = lines_inert("\n".join(out))
    assert len(lines) == len(out)  # no line of output held a newline
    assert any("\\x1b]52;c;" in line and "/gateway]" in line for line in lines)
    assert any("\\x1b]52;c;" in line and "/llm]" in line for line in lines)


# --- the TUI ------------------------------------------------------------------


def _shown(widget) -> str:
    """The characters a widget sends to the terminal, line by line."""
    from textual.geometry import Region

    size = widget.size
    strips = widget.render_lines(Region(0, 0, size.width, size.height))
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


@pytest.fixture
def make_app(home: FleetHome, red: str):
    runtime = MemoryRuntime(home, running=[red])

    def build():
        from cftui.tui.app import make_app

        return runtime, make_app(
            home, MemoryRuntimes(home, runtime), clock=frozen_clock, status_interval=3600
        )

    return build


async def test_tui_traffic_shows_a_hostile_model_literally(home, red, make_app) -> None:
    from textual.widgets import Static

    from cftui.tui.traffic_view import TrafficView

    write_traffic(home, red, [hostile_record(red), hostile_record(red, model=MARKUP_MODEL)])
    _runtime, app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        app.open_bot(red, "traffic")
        await wait_until(pilot, lambda: app.screen.query(TrafficView))
        view = app.screen.query_one(TrafficView)
        await wait_until(pilot, lambda: view.row_count == 2 and "[bold" in _shown(view))
        rows = _shown(view)
        lines_inert(rows)
        assert "claude\\x1b[2A" in rows and "[bold red]x[/][link" in rows
        detail = app.screen.query_one("#traffic-detail Static", Static)
        await wait_until(pilot, lambda: "model:" in _shown(detail))
        lines_inert(_shown(detail))
        view.action_move(-1)
        await wait_until(pilot, lambda: "claude\\x1b" in _shown(detail))
        assert "\\n2026" in _shown(detail)


async def test_tui_logs_and_services_show_agent_text_literally(home, red, make_app) -> None:
    from textual.widgets import Log, Static

    runtime, app = make_app()
    runtime.log_lines[(red, "gateway")] = [f"ready{CURSOR_UP}{OSC52}", MARKUP_MODEL]
    real_status = runtime.status

    async def status(bots):
        out = await real_status(bots)
        services = out[red].services
        services["gateway"] = replace(services["gateway"], detail=MARKUP_MODEL)
        return out

    runtime.status = status
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_until(pilot, lambda: red in app.statuses)
        app.open_bot(red, "overview")
        await wait_until(pilot, lambda: app.screen.query("#overview-services"))
        services = app.screen.query_one("#overview-services", Static)
        await wait_until(pilot, lambda: "[link=" in _shown(services))
        assert MARKUP_MODEL[:20] in _shown(services)
        app.open_bot(red, "logs")
        await wait_until(pilot, lambda: app.screen.query(Log))
        log = app.screen.query_one(Log)
        await wait_until(pilot, lambda: "ready" in _shown(log))
        shown = _shown(log)
        lines_inert(shown)
        assert "ready\\x1b[2A" in shown and MARKUP_MODEL in shown
