"""`dataclasses` loaded without `inspect`, for every command's start.

The standard library's `dataclasses` imports `inspect` at its top (with it
`ast`, `dis` and `tokenize`: about 10 ms, an eighth of `cftui list`) for
one call, `inspect.signature`, made only to write a docstring for a class
that has none. So while `dataclasses` is first imported, `inspect` is a
stand-in module that imports the real one the first time any of its names
is asked for, and passes every name on to it. The stand-in leaves
`sys.modules` at once: every other `import inspect` gets the real module.
Nothing changes when either module is loaded already (the TUI, tests).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class _InspectOnDemand(types.ModuleType):
    """What `dataclasses` holds as `inspect`: the real one, when asked."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("inspect"), name)


def load() -> None:
    """Import `dataclasses`, leaving `inspect` unloaded until it is used."""
    if "dataclasses" in sys.modules or "inspect" in sys.modules:
        return
    stand_in = _InspectOnDemand("inspect")
    sys.modules["inspect"] = stand_in
    try:
        import dataclasses  # noqa: F401 - the import is the point
    finally:
        if sys.modules.get("inspect") is stand_in:
            del sys.modules["inspect"]
