"""The layout of cftui.snapshots and cftui.age: the snapshots package's
public names all resolve and say the same in its three lists, and the
encryptor child loads neither the snapshots domain nor the fleet, so it
starts as fast as the age format alone."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import cftui
from cftui import snapshots

ROOT = Path(cftui.__file__).resolve().parent.parent


def test_every_public_name_resolves_from_its_module() -> None:
    for module, names in snapshots._API.items():
        for name in names:
            value = getattr(snapshots, name)
            assert value is getattr(importlib.import_module(f"cftui.snapshots.{module}"), name)


def test_the_public_names_agree_with_all_and_the_type_checking_imports() -> None:
    tree = ast.parse(Path(snapshots.__file__).read_text())
    guarded = next(n for n in tree.body if isinstance(n, ast.If))
    imported = {
        (node.module.rsplit(".", 1)[1], alias.name)
        for node in guarded.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    declared = {(module, name) for module, names in snapshots._API.items() for name in names}
    assert imported == declared
    assert sorted(snapshots.__all__) == sorted(name for _m, name in declared)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        snapshots.no_such_name  # noqa: B018


def test_the_encryptor_child_loads_no_domain_module() -> None:
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1]]; "
        "import cftui.age.child, cftui.age.writebehind; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('cftui'))))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(ROOT)], capture_output=True, text=True, check=True
    )
    loaded = set(out.stdout.split())
    assert "cftui.age.writebehind" in loaded
    assert not loaded & {"cftui.fleet", "cftui.snapshots.catalog", "cftui.audit", "cftui.locks"}
