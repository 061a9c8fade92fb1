"""A `package.json` read as hostile input: what it declares, or one line
saying why it cannot be read.

The bot can write its save directory, so the file is bounded in size, must
be a JSON object, and each declared name must be a name npm accepts
(lowercase, optionally `@scope/`, no path tricks); each version spec is a
short printable string. Nothing in it is ever executed here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from cftui.errors import CftuiError

MANIFEST = "package.json"
LOCKFILE = "package-lock.json"
# npm itself refuses a package.json past a few MiB; a save state is small.
MAX_BYTES = 256 << 10
MAX_DEPENDENCIES = 500
MAX_SPEC = 200
# The dependency tables npm installs by default (devDependencies are not
# installed with --omit=dev, which the installer uses).
SECTIONS = ("dependencies", "optionalDependencies")
# npm's validate-npm-package-name, for new names: at most 214 characters,
# lowercase URL-safe characters, not starting with a dot or underscore.
_NAME_RE = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")
_SPEC_RE = re.compile(r"^[\x20-\x7e]*$")


class ManifestError(CftuiError):
    """A package.json that cannot be read as a dependency list."""


@dataclass(frozen=True)
class Declared:
    """The packages one package.json declares: name -> version spec."""

    dependencies: dict[str, str]


def valid_name(name: str) -> bool:
    return len(name) <= 214 and _NAME_RE.fullmatch(name) is not None


def parse(data: bytes, where: str) -> Declared:
    """The declared dependencies of `data`; ManifestError in one line."""
    if len(data) > MAX_BYTES:
        raise ManifestError(f"{where}: larger than {MAX_BYTES} bytes ({len(data)})")
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ManifestError(f"{where}: not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        line = str(exc).splitlines()[0][:120] if str(exc) else "invalid"
        raise ManifestError(f"{where}: not JSON ({line})") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: not a JSON object")
    deps: dict[str, str] = {}
    for section in SECTIONS:
        table = doc.get(section)
        if table is None:
            continue
        if not isinstance(table, dict):
            raise ManifestError(f"{where}: {section} is not an object")
        for name, spec in table.items():
            if not isinstance(name, str) or not valid_name(name):
                raise ManifestError(f"{where}: {section}: {_show(name)} is not an npm package name")
            if not isinstance(spec, str) or len(spec) > MAX_SPEC or not _SPEC_RE.fullmatch(spec):
                raise ManifestError(
                    f"{where}: {section}: {name}: the version must be a short printable string"
                )
            deps[name] = spec
            if len(deps) > MAX_DEPENDENCIES:
                raise ManifestError(f"{where}: more than {MAX_DEPENDENCIES} dependencies")
    return Declared(deps)


def _show(value: object) -> str:
    """An invalid name quoted safely for one line (the TUI makes it inert too)."""
    text = value if isinstance(value, str) else repr(value)
    return ascii(text[:60] + ("…" if len(text) > 60 else ""))
