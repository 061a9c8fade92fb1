"""Encrypted snapshots of a bot's `state/` (CONTRACTS §5).

A snapshot is a tar of `state/` (caches left out) encrypted with age to the
bot's X25519 recipient, so the stock tool reads it:
`age -d -i secrets/BOT/snapshot.key FILE | tar -t`.

Both directions stream, so memory stays flat whatever the state's size, and
`cftui.age` does the age format in a small child process (`agechild`):
- create (`create`): GNU tar archives the names our walk chose and pipes the
  archive straight into the encryptor, which writes a temporary name with
  write-behind (`cftui.age.writebehind`); it is then linked to its final name, so a
  partial file never carries a final name.
- restore: the decryptor pipes plaintext to tarfile (`decrypt`, with the fast
  header parser of `tarheader`), which reads it forward only and extracts each
  member through the checks of `extract`, the module that faces hostile
  archives, into a fresh directory beside `state/`. Only when everything
  (decryption, authentication, extraction) succeeded is it swapped in
  (`swap`, which also recovers from a restore that died); otherwise the old
  state was never touched.
- `catalog`: names, `latest`, list, rename, delete; `operations`: snapshot and
  restore of a bot with its runtime, its lock and the events log.

The names below are the package's public API, what the CLI, the TUI and
`update` call. They are loaded on first use (PEP 562) rather than imported
here, so a command that lists snapshots does not load the create and restore
pipelines (and the encryptor child, which imports only `cftui.age`, never
loads this domain: about 0.3 s a snapshot); what is internal stays in its module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# For type checkers; `X` marks each as re-exported.
if TYPE_CHECKING:
    from cftui.snapshots.catalog import (
        LATEST,
        NAME_RE,
        SUFFIX,
        SnapshotInfo,
        delete,
        delete_all,
        list_snapshots,
        parse_name,
        rename,
        resolve,
        sanitize_label,
        snapshot_name,
    )
    from cftui.snapshots.create import (
        CreateStats,
        create_snapshot,
    )
    from cftui.snapshots.decrypt import (
        check_key,
        extract_snapshot,
    )
    from cftui.snapshots.operations import (
        RestoreResult,
        restore,
        snapshot,
    )
    from cftui.snapshots.swap import (
        restore_state,
    )

# The public names by module; `__all__` and the imports above say the same
# (tests/snapshots/test_package_api.py checks that they agree).
_API = {
    "catalog": (
        "LATEST",
        "NAME_RE",
        "SUFFIX",
        "SnapshotInfo",
        "delete",
        "delete_all",
        "list_snapshots",
        "parse_name",
        "rename",
        "resolve",
        "sanitize_label",
        "snapshot_name",
    ),
    "create": ("CreateStats", "create_snapshot"),
    "decrypt": ("check_key", "extract_snapshot"),
    "operations": ("RestoreResult", "restore", "snapshot"),
    "swap": ("restore_state",),
}
_HOME = {name: module for module, names in _API.items() for name in names}

__all__ = [
    "LATEST",
    "NAME_RE",
    "SUFFIX",
    "CreateStats",
    "RestoreResult",
    "SnapshotInfo",
    "check_key",
    "create_snapshot",
    "delete",
    "delete_all",
    "extract_snapshot",
    "list_snapshots",
    "parse_name",
    "rename",
    "resolve",
    "restore",
    "restore_state",
    "sanitize_label",
    "snapshot",
    "snapshot_name",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module the first time it is asked for."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
