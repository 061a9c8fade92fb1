"""What a snapshot of `state/` leaves out (CONTRACTS §5): caches and things
rebuilt or rewritten at run time. The one list, in the two forms that apply
it: `is_excluded` for the snapshot's own walk, `rsync_filter_args` for the
Lima runtime's pull of `state/` before a snapshot, `find_prune_args` for
the walk on another Docker host that streams a remote bot's `state/`.

A leaf at the package's top level, not inside `cftui.snapshots`, because the
runtimes (which snapshots call) import it too. The walk also leaves out any
directory holding a `pyvenv.cfg` (a virtualenv, whatever its name); rsync has
no rule for that, so the pull brings such a directory and the walk drops it.
"""

from __future__ import annotations

EXCLUDED_DIRS = frozenset(
    {
        "installed",
        ".installed-new",  # an install in progress, and the one it replaces (cftui.deps)
        ".installed-old",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".cache",
        "logs",
        "tmp",
    }
)
EXCLUDED_SUFFIXES = (
    ".sqlite-wal",
    ".sqlite-shm",
    ".tmp",
    ".temp",
    ".swp",
    ".log",
    ".partial",
    "~",
)
EXCLUDED_PREFIXES = (".#",)


def is_excluded(name: str, is_dir: bool) -> bool:
    """Caches, temp files and logs, which a snapshot leaves out (CONTRACTS §5)."""
    if is_dir:
        return name in EXCLUDED_DIRS
    return name.endswith(EXCLUDED_SUFFIXES) or name.startswith(EXCLUDED_PREFIXES)


def rsync_filter_args() -> tuple[str, ...]:
    """The same rules as rsync arguments, first match wins: the directories
    by name at any depth; then directories that merely look like an excluded
    file kept (the walk drops suffixes and prefixes for files only); then the
    files by suffix and prefix."""
    file_patterns = [f"*{s}" for s in EXCLUDED_SUFFIXES] + [f"{p}*" for p in EXCLUDED_PREFIXES]
    return (
        *(f"--exclude={d}/" for d in sorted(EXCLUDED_DIRS)),
        *(f"--include={p}/" for p in file_patterns),
        *(f"--exclude={p}" for p in file_patterns),
    )


def find_prune_args() -> tuple[str, ...]:
    """The same rules as a `find` expression that is true for what to leave
    out (used as `find state ( EXPR ) -prune -o ... -print0`): the
    directories by name, any directory holding a `pyvenv.cfg` (as the walk
    drops it), then files (anything but a directory) by suffix and prefix."""
    dirs: list[str] = []
    for d in sorted(EXCLUDED_DIRS):
        dirs += [*(("-o",) if dirs else ()), "-name", d]
    files: list[str] = []
    for p in [f"*{s}" for s in EXCLUDED_SUFFIXES] + [f"{p}*" for p in EXCLUDED_PREFIXES]:
        files += [*(("-o",) if files else ()), "-name", p]
    return (
        "(", "-type", "d", "(", *dirs, ")", ")",
        "-o", "(", "-type", "d", "-exec", "test", "-e", "{}/pyvenv.cfg", ";", ")",
        "-o", "(", "!", "-type", "d", "(", *files, ")", ")",
    )  # fmt: skip
