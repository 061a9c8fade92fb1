"""Snapshot tests: the look of the main screens, pinned as SVGs
(pytest-textual-snapshot; `--snapshot-update` accepts a deliberate change).

Each runs the app on the deterministic scene (scene.py) at 120x36 with a
frozen clock; nothing blinks (no text field has focus when the shot is taken).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.tui.scene import scene_app
from tests.tui.tui_helpers import wait_until

SIZE = (120, 36)


@pytest.fixture
def tmp_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fixed directory per test (paths are on screen), and snapshot sizes
    rounded: age adds a random-length "grease" stanza to every header."""
    root = Path(tempfile.gettempdir()) / "cftui-tui-snapshots" / request.node.name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    monkeypatch.setattr("cftui.tui.snapshots_tab.human_bytes", lambda n: f"~{round(n / 1024)} KiB")
    # Fixed commit dates: the approved commit's id is on the Proposals tab.
    from cftui import hostgit

    real_env = hostgit.git_env
    fixed = "2026-11-24T06:00:00+00:00"
    monkeypatch.setattr(
        hostgit,
        "git_env",
        lambda: {**real_env(), "GIT_AUTHOR_DATE": fixed, "GIT_COMMITTER_DATE": fixed},
    )
    yield root
    shutil.rmtree(root, ignore_errors=True)


async def _fleet_ready(pilot) -> None:
    app = pilot.app
    await wait_until(
        pilot,
        lambda: (
            len(app.statuses) == 4
            and len(app.totals) == 4
            and set(app.proposal_counts.parts) >= set(app.configs)
        ),  # the proposals column
    )
    await pilot.pause()


class TestFleetScreen:
    """The home screen: every bot, states, uptime, today's traffic, capture."""

    def test_fleet_dark(self, snap_compare, tmp_path: Path) -> None:
        app, _home, _rt = scene_app(tmp_path / "fleet")
        assert snap_compare(app, terminal_size=SIZE, run_before=_fleet_ready)

    def test_fleet_light(self, snap_compare, tmp_path: Path) -> None:
        app, _home, _rt = scene_app(tmp_path / "fleet", theme="cftui-light")
        assert snap_compare(app, terminal_size=SIZE, run_before=_fleet_ready)

    def test_fleet_locked(self, snap_compare, tmp_path: Path) -> None:
        from cftui import locks

        app, home, runtime = scene_app(tmp_path / "fleet")
        locks.lock_bots(home, ["scout", "scribe", "sentinel", "tinker"])
        for bot in ("scout", "scribe", "sentinel"):
            runtime._set(bot, "stopped")
            runtime._set(bot, "killed", ("gateway",))

        async def ready(pilot) -> None:
            await _fleet_ready(pilot)
            await wait_until(pilot, lambda: len(pilot.app.locked) == 4)

        assert snap_compare(app, terminal_size=SIZE, run_before=ready)

    def test_fleet_costs(self, snap_compare, tmp_path: Path) -> None:
        """Wide enough for the cost columns, after Locked: today, month, left."""
        app, _home, _rt = scene_app(tmp_path / "fleet")

        async def ready(pilot) -> None:
            await _fleet_ready(pilot)
            await wait_until(pilot, lambda: len(pilot.app.month_totals) == 4)
            await pilot.pause()

        assert snap_compare(app, terminal_size=(160, 36), run_before=ready)

    def test_help(self, snap_compare, tmp_path: Path) -> None:
        app, _home, _rt = scene_app(tmp_path / "fleet")

        async def ready(pilot) -> None:
            await _fleet_ready(pilot)
            await pilot.press("question_mark")
            await pilot.pause()

        assert snap_compare(app, terminal_size=SIZE, run_before=ready)


class TestBotScreen:
    """A bot's tabs, opened with --open BOT:TAB."""

    def test_traffic(self, snap_compare, tmp_path: Path) -> None:
        from cftui.tui.traffic_view import TrafficView

        app, _home, _rt = scene_app(tmp_path / "fleet", open_bot="scout", open_tab="traffic")

        async def ready(pilot) -> None:
            await _fleet_ready(pilot)
            await wait_until(pilot, lambda: pilot.app.screen.query(TrafficView))
            view = pilot.app.screen.query_one(TrafficView)
            await wait_until(pilot, lambda: view.cursor == 239 and not view.counting)
            await pilot.press("up", "up", "up")
            await wait_until(pilot, lambda: "scout-00236" in str(view.tlog.cached(236)))
            await pilot.pause()

        assert snap_compare(app, terminal_size=SIZE, run_before=ready)

    def test_traffic_filtered(self, snap_compare, tmp_path: Path) -> None:
        from cftui.tui.traffic_view import TrafficView

        app, _home, _rt = scene_app(tmp_path / "fleet", open_bot="scout", open_tab="traffic")

        async def ready(pilot) -> None:
            await _fleet_ready(pilot)
            await wait_until(pilot, lambda: pilot.app.screen.query(TrafficView))
            view = pilot.app.screen.query_one(TrafficView)
            await wait_until(pilot, lambda: view.row_count == 240)
            await pilot.press("slash", *"status:5xx", "enter")
            await wait_until(pilot, lambda: view.row_count == 24)
            await pilot.pause()

        assert snap_compare(app, terminal_size=SIZE, run_before=ready)

    def test_capture(self, snap_compare, tmp_path: Path) -> None:
        app, _home, _rt = scene_app(tmp_path / "fleet", open_bot="scout", open_tab="capture")

        async def ready(pilot) -> None:
            await _fleet_ready(pilot)
            await wait_until(pilot, lambda: "12 newest flows" in _status(pilot, "#capture-status"))
            await pilot.pause()

        assert snap_compare(app, terminal_size=SIZE, run_before=ready)

    def test_snapshots(self, snap_compare, tmp_path: Path) -> None:
        app, _home, _rt = scene_app(tmp_path / "fleet", open_bot="scout", open_tab="snapshots")

        async def ready(pilot) -> None:
            await _fleet_ready(pilot)
            await wait_until(pilot, lambda: "2 snapshot(s)" in _status(pilot, "#snapshots-status"))
            await pilot.pause()

        assert snap_compare(app, terminal_size=SIZE, run_before=ready)

    def test_proposals(self, snap_compare, tmp_path: Path) -> None:
        from cftui.tui.diff_view import DiffView
        from cftui.tui.proposals_tab import ProposalsTab

        app, _home, _rt = scene_app(tmp_path / "fleet", open_bot="scout", open_tab="proposals")

        async def ready(pilot) -> None:
            await _fleet_ready(pilot)
            await wait_until(pilot, lambda: pilot.app.screen.query(ProposalsTab))
            tab = pilot.app.screen.query_one(ProposalsTab)
            await wait_until(pilot, lambda: len(tab._keys) == 5)
            await pilot.press("down", "down")  # the new skill
            view = pilot.app.screen.query_one(DiffView)
            await wait_until(pilot, lambda: "forecast" in view.plain and view.settled)
            assert view.coloured
            # The fleet's count toasts "proposes N changes" if it lands after
            # the tab's own scan: once they agree, the shot pins the tab alone.
            app = pilot.app
            await wait_until(
                pilot,
                lambda: (
                    not app._counting
                    and tab.found is not None
                    and app.proposal_counts.counts.get("scout") == tab.found.count
                ),
            )
            app.clear_notifications()
            await pilot.pause()

        assert snap_compare(app, terminal_size=SIZE, run_before=ready)

    def test_overview(self, snap_compare, tmp_path: Path) -> None:
        app, home, _rt = scene_app(tmp_path / "fleet", open_bot="scout", open_tab="overview")
        # The history shows event times: fixed ones here (the scene's are now).
        home.events_log.write_text(
            "".join(
                json.dumps({"ts": ts, "action": action, "bot": "scout", "by": "operator"}) + "\n"
                for ts, action in (
                    ("2026-12-01T09:00:00.000Z", "init"),
                    ("2026-12-01T09:05:00.000Z", "start"),
                )
            )
        )

        async def ready(pilot) -> None:
            from cftui.tui.overview_tab import OverviewTab

            await _fleet_ready(pilot)
            await wait_until(pilot, lambda: len(pilot.app.month_totals) == 4)
            tab = pilot.app.screen.query_one(OverviewTab)
            # the chart read once today's 240 calls are counted
            await wait_until(pilot, lambda: sum(t.calls for _h, t in tab.series or []) == 240)
            await wait_until(pilot, lambda: "09:05:00.000Z  start" in tab.history_text)
            await pilot.pause()

        assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def _status(pilot, selector: str) -> str:
    widget = pilot.app.screen.query_one(selector)
    return str(getattr(widget, "content", ""))
