"""KEY=VALUE files (`providers.env`, `gateway.env`), read the same everywhere."""

from __future__ import annotations

from pathlib import Path


def parse_env_text(text: str) -> dict[str, str]:
    """Parse KEY=VALUE lines; comments, blanks and `export ` prefixes ignored."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key:
            values[key] = value
    return values


def read_env_file(path: Path | str) -> dict[str, str]:
    """Parse an env file; a missing file raises FileNotFoundError."""
    return parse_env_text(Path(path).read_text(encoding="utf-8"))
