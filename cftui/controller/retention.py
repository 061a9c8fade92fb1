"""Which scheduled snapshots to keep: the newest of each of the last N
hours, days and ISO weeks that have one (ClawFactory's 24/7/4; the rule of
borg's and restic's `--keep-hourly/-daily/-weekly`). A snapshot kept by any
rule stays.

Only snapshots labelled `SCHEDULED_LABEL` are ever considered: a manual
snapshot, a `pre-restore` or `pre-promote` safety snapshot carries another
label, so no schedule can prune it. Pure, so the kept set is tested exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from cftui.controller.settings import Keep
from cftui.snapshots.catalog import SnapshotInfo

# The label the controller gives its snapshots, and the only one it prunes.
SCHEDULED_LABEL = "scheduled"


def _hour(t: datetime) -> tuple[int, ...]:
    return (t.year, t.month, t.day, t.hour)


def _day(t: datetime) -> tuple[int, ...]:
    return (t.year, t.month, t.day)


def _week(t: datetime) -> tuple[int, ...]:
    iso = t.isocalendar()
    return (iso.year, iso.week)


def _newest_per_bucket(
    snaps: Sequence[SnapshotInfo], count: int, bucket: Callable[[datetime], tuple[int, ...]]
) -> set[str]:
    kept: set[str] = set()
    seen: set[tuple[int, ...]] = set()
    for snap in snaps:  # newest first
        if len(seen) >= count:
            break
        key = bucket(snap.created)
        if key not in seen:
            seen.add(key)
            kept.add(snap.name)
    return kept


def to_prune(snapshots: Sequence[SnapshotInfo], keep: Keep) -> list[str]:
    """The names of scheduled snapshots that no rule keeps, oldest first."""
    scheduled = sorted(
        (s for s in snapshots if s.label == SCHEDULED_LABEL),
        key=lambda s: (s.created, s.name),
        reverse=True,
    )
    kept = (
        _newest_per_bucket(scheduled, keep.hourly, _hour)
        | _newest_per_bucket(scheduled, keep.daily, _day)
        | _newest_per_bucket(scheduled, keep.weekly, _week)
    )
    return [s.name for s in reversed(scheduled) if s.name not in kept]
