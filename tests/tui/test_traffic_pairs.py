"""A call is two lines in traffic.jsonl (its start, then its end). The
unfiltered view shows every line: the start line of a finished call reads
as such, never as a malformed line; `cftui traffic --follow` and `--run`
print a call once, when it ends."""

from __future__ import annotations

from cfproxies.jsonl import encode_line
from cfproxies.record import new_record, start_line

from cftui.audit.traffic.log import TrafficLog
from cftui.cli.audit_cmds import _print_lines
from cftui.tui.traffic_view import STARTED_ONLY, TrafficView
from tests.tui.tui_helpers import on_bot_screen, wait_until

SIZE = (120, 36)


def _pair(path, n: int) -> None:
    rec = new_record(bot="alpha", provider="anthropic", method="POST", path="/v1/m", epoch=1e9 + n)
    rec.update(model=f"paired-{n}", status=200, tokens_in=10, tokens_out=1)
    with open(path, "ab") as f:
        f.write(encode_line(start_line(rec, 100)) + encode_line(rec))


async def test_a_finished_calls_start_line_is_not_shown_as_malformed(make, fleet) -> None:
    log = fleet.traffic_log("alpha")
    _pair(log, 1)
    app = make(open_bot="alpha", open_tab="traffic")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: on_bot_screen(app))
        view = app.screen.query_one(TrafficView)
        await wait_until(pilot, lambda: view.row_count == 42)

        def texts() -> list[str]:
            return [view.render_line(y).text for y in range(view.size.height)]

        await wait_until(pilot, lambda: any(STARTED_ONLY in t for t in texts()))
        assert not any("malformed" in t for t in texts())
        assert any("paired-1" in t for t in texts())


def test_following_prints_a_call_once_when_it_ends(fleet, capsys) -> None:
    path = fleet.traffic_log("alpha")
    path.write_bytes(b"")
    rec = new_record(bot="alpha", provider="openai", method="POST", path="/v1/c", epoch=1e9)
    rec.update(model="paired-2", status=200)
    log = TrafficLog(path)
    log.open()
    with open(path, "ab") as f:
        f.write(encode_line(start_line(rec, 100)))  # the call is under way
    log.scan()
    _print_lines(log, 0, len(log), False, following=True)
    assert capsys.readouterr().out == ""
    with open(path, "ab") as f:
        f.write(encode_line(rec))  # and now it has ended
    log.poll()
    _print_lines(log, 1, len(log), False, following=True)
    out = capsys.readouterr().out
    assert out.count("paired-2") == 1 and "unfinished" not in out
