"""The gateway's `openclaw.json` as text: JSON5 in, plain JSON out, and what a
config must be. A leaf of the gateway package, so the config commands and the
approved-version tracking (`drift`) read and write it the same way without
importing each other.
"""

from __future__ import annotations

import json
import math
from typing import Any

import json5

from cftui.errors import ConfigError

CONFIG_NAME = "openclaw.json"


def parse_config(text: str, source: str = CONFIG_NAME) -> dict[str, Any]:
    """Parse JSON5 text into a validated config object; ConfigError on anything else."""
    try:
        data = json5.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source} is not valid JSON5: {_one_line(exc)}") from None
    validate_config(data, source)
    return data


def validate_config(data: Any, source: str = CONFIG_NAME) -> None:
    """A config must be a JSON object that plain JSON can represent exactly."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must hold a JSON object at the top, not {_kind(data)}")
    _check_value(data, "", source)


def _check_value(value: Any, where: str, source: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{source}: key {key!r} at {where or 'top'} is not a string")
            _check_value(item, f"{where}.{key}" if where else key, source)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]", source)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: {where} is {value}, which JSON cannot hold")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise ConfigError(f"{source}: {where} is a {type(value).__name__}, not a JSON value")


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", type(None): "null"}.get(type(value), "a scalar")


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]


def dumps(data: dict[str, Any]) -> str:
    """Plain JSON (no NaN), indented, as cftui writes every openclaw.json."""
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
