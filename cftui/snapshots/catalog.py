"""The snapshots folder of a bot: names (`LABEL--TIMESTAMP.tar.age`), the
`latest.tar.age` link, and list, resolve, rename and delete.

Names are checked against `NAME_RE` before any file is touched, so a name
typed by the user (or anything else in the folder) never reaches a path
outside it."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cftui.audit.events import record_event
from cftui.errors import SnapshotError, UsageError
from cftui.fleet import FleetHome
from cftui.securefs import fsync_dir

SUFFIX = ".tar.age"
LATEST = "latest" + SUFFIX
TS_FORMAT = "%Y-%m-%dT%H-%M-%SZ"
NAME_RE = re.compile(
    r"^(?P<label>[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?)--"
    r"(?P<ts>\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ)\.tar\.age$"
)
# The one directory at the top of every archive: `state/`, as in the bot's repo.
ARC_ROOT = "state"


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot file as `list` shows it."""

    name: str
    label: str
    created: datetime
    size: int
    latest: bool = False


# --- names -----------------------------------------------------------------


def sanitize_label(label: str | None) -> str:
    """A label safe in a file name: lowercase letters, digits, '_' and single '-'."""
    text = (label or "").strip().lower()
    text = re.sub(r"[^a-z0-9_-]+", "-", text)
    text = re.sub(r"-{2,}", "-", text)
    text = text.strip("-_")[:64].strip("-_")
    return text or "snapshot"


def snapshot_name(label: str, when: datetime) -> str:
    return f"{sanitize_label(label)}--{when.astimezone(UTC).strftime(TS_FORMAT)}{SUFFIX}"


def parse_name(name: str) -> tuple[str, datetime] | None:
    m = NAME_RE.match(name)
    if not m:
        return None
    created = datetime.strptime(m["ts"], TS_FORMAT).replace(tzinfo=UTC)
    return m["label"], created


def latest_target(folder: Path) -> str | None:
    try:
        target = os.readlink(folder / LATEST)
    except OSError:
        return None
    return target if parse_name(target) else None


def resolve(home: FleetHome, bot: str, name: str) -> Path:
    """The file of a snapshot named by the user: `latest`, a full file name or
    one without `.tar.age`. Anything with a slash or not ours is refused."""
    folder = home.snapshots_dir(bot)
    if name in ("latest", LATEST):
        target = latest_target(folder)
        if target is None:
            raise SnapshotError(f"{bot} has no snapshot yet: run `cftui snapshot create {bot}`")
        name = target
    if not name.endswith(SUFFIX):
        name += SUFFIX
    if parse_name(name) is None:
        raise UsageError(
            f"{name!r} is not a snapshot name (LABEL--YYYY-MM-DDTHH-MM-SSZ{SUFFIX}); "
            f"see `cftui snapshot list {bot}`"
        )
    path = folder / name
    if not path.is_file():
        raise SnapshotError(f"no snapshot {name} for {bot}: see `cftui snapshot list {bot}`")
    return path


def list_snapshots(home: FleetHome, bot: str) -> list[SnapshotInfo]:
    """The bot's snapshots, newest first."""
    folder = home.snapshots_dir(bot)
    latest = latest_target(folder)
    out = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        parsed = parse_name(entry.name)
        if parsed is None or not entry.is_file(follow_symlinks=False):
            continue
        out.append(
            SnapshotInfo(
                entry.name,
                parsed[0],
                parsed[1],
                entry.stat(follow_symlinks=False).st_size,
                entry.name == latest,
            )
        )
    out.sort(key=lambda s: (s.created, s.name), reverse=True)
    return out


def set_latest(folder: Path, name: str | None) -> None:
    """Swap `latest.tar.age` atomically: a new symlink under a temp name, renamed."""
    link = folder / LATEST
    if name is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
    else:
        tmp = folder / f".{LATEST}.{os.getpid()}.{threading.get_ident()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(name, tmp)
        os.replace(tmp, link)
    fsync_dir(folder)


def _repoint_latest_to_newest(home: FleetHome, bot: str) -> None:
    remaining = list_snapshots(home, bot)
    set_latest(home.snapshots_dir(bot), remaining[0].name if remaining else None)


def rename(home: FleetHome, bot: str, old: str, new_label: str) -> str:
    """Give a snapshot a new label, keeping its time; returns the new name."""
    if old in ("latest", LATEST):
        raise UsageError("name the snapshot itself, not `latest` (see `cftui snapshot list`)")
    src = resolve(home, bot, old)
    _label, created = parse_name(src.name)  # type: ignore[misc]  # resolve() parsed it
    new = snapshot_name(new_label, created)
    if new == src.name:
        return new
    folder = src.parent
    try:
        os.link(src, folder / new)  # refuses to overwrite, unlike rename
    except FileExistsError:
        raise SnapshotError(f"a snapshot named {new} already exists") from None
    os.unlink(src)
    if latest_target(folder) == src.name:
        set_latest(folder, new)
    else:
        fsync_dir(folder)
    record_event(home, "snapshot", bot, op="rename", name=src.name, to=new)
    return new


def delete(home: FleetHome, bot: str, name: str) -> None:
    """Delete one snapshot; `latest` moves to the newest that is left."""
    if name in ("latest", LATEST):
        raise UsageError(
            "`latest` cannot be deleted directly: delete the snapshot it points to by name"
        )
    path = resolve(home, bot, name)
    was_latest = latest_target(path.parent) == path.name
    os.unlink(path)
    if was_latest:
        _repoint_latest_to_newest(home, bot)
    else:
        fsync_dir(path.parent)
    record_event(home, "snapshot", bot, op="delete", name=path.name)


def delete_all(home: FleetHome, bot: str) -> int:
    """Delete every snapshot of a bot; returns how many."""
    snaps = list_snapshots(home, bot)
    folder = home.snapshots_dir(bot)
    for snap in snaps:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / snap.name)
    if folder.exists():
        set_latest(folder, None)
    record_event(home, "snapshot", bot, op="delete-all", count=len(snaps))
    return len(snaps)
