"""Snapshot of the Proposals tab with egress requests under the code
proposals (pytest-textual-snapshot; `--snapshot-update` accepts a deliberate
change): the deterministic scene of test_tui_snapshots, at 120x36, frozen
clock, with a ledger of the egress proxy's written by hand for `scout`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cftui.tui.diff_view import DiffView
from tests.proposals.egress_ledger import entry, write_ledger
from tests.tui.scene import scene_app
from tests.tui.test_tui_snapshots import SIZE, _fleet_ready, tmp_path  # noqa: F401
from tests.tui.tui_helpers import NOW, wait_until


def test_proposals_with_egress_requests(snap_compare, tmp_path: Path) -> None:  # noqa: F811
    from cftui.tui.egress_requests_view import EgressRequestsView
    from cftui.tui.proposals_tab import ProposalsTab

    app, home, _rt = scene_app(tmp_path / "fleet", open_bot="scout", open_tab="proposals")
    write_ledger(
        home,
        "scout",
        [
            entry("api.openai.com", count=14, first=NOW - timedelta(days=1), last=NOW),
            entry(
                "api.github.com",
                count=2,
                method="POST",
                path="/repos/acme/site/issues/7/comments",
                rule="api.github.com GET,HEAD /repos/acme/",
                first=NOW - timedelta(minutes=40),
                last=NOW - timedelta(minutes=3),
            ),
            entry("[bold]not markup[/bold]", port=8443, first=NOW - timedelta(seconds=20)),
        ],
    )

    async def ready(pilot) -> None:
        await _fleet_ready(pilot)
        await wait_until(pilot, lambda: pilot.app.screen.query(ProposalsTab))
        tab = pilot.app.screen.query_one(ProposalsTab)
        view = pilot.app.screen.query_one(EgressRequestsView)
        await wait_until(pilot, lambda: len(tab._keys) == 5 and len(view._keys) == 3)
        diff = pilot.app.screen.query_one(DiffView)
        await wait_until(pilot, lambda: diff.settled and diff.plain != "reading…")
        # The fleet's count may have toasted "proposes N changes" if it
        # finished after the tab's own reads (its scans run on their own
        # clock): once it agrees with the tab, the shot pins the tab alone.
        app = pilot.app
        await wait_until(
            pilot, lambda: not app._counting and app.proposal_counts.counts.get("scout") == 7
        )
        app.clear_notifications()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)
