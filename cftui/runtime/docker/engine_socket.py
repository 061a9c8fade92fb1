"""The Docker Engine API over its unix socket, with `http.client` alone.

Why not the SDK: `cftui list` and `cftui status` only read (the container
listing and one inspect a container), and the docker SDK costs them more
than the whole rest of the command (requests, urllib3 and asyncio to load:
~130 ms, where a bare interpreter starts in ~40). So the read-only fast path
speaks the two GETs itself, on one keep-alive connection.

Only where that reaches the engine the SDK would reach (`local_socket`):
`DOCKER_HOST` unset or `unix://`, no Docker CLI context chosen, no TLS
settings. Anything else (tcp://, ssh://, a context) is the SDK's to read,
and `local_socket` says None.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any
from urllib.parse import quote

from cftui.errors import RuntimeUnavailable

DEFAULT_SOCKET = "/var/run/docker.sock"  # the SDK's and the CLI's default
TIMEOUT_S = 60.0  # the runtime's SDK client's timeout
_MAX_BODY = 64 << 20  # an inspect is a few KiB; a listing of 1000 containers a few MiB


def local_socket(environ: os._Environ[str] | dict[str, str] | None = None) -> str | None:
    """The path of the engine's unix socket the docker SDK would connect
    to (`docker.from_env`), or None when it would connect elsewhere or the
    choice is not this module's to make (a remote URL, a CLI context, TLS)."""
    env = os.environ if environ is None else environ
    if env.get("DOCKER_TLS_VERIFY") or env.get("DOCKER_CERT_PATH"):
        return None
    host = env.get("DOCKER_HOST") or ""
    if host:
        for scheme in ("unix://", "http+unix://"):
            if host.startswith(scheme):
                path = host[len(scheme) :]
                return path if path.startswith("/") else None
        return None
    if (env.get("DOCKER_CONTEXT") or "default") != "default" or _config_context(env):
        return None
    return DEFAULT_SOCKET


def _config_context(env: os._Environ[str] | dict[str, str]) -> bool:
    """Whether the Docker CLI's config names a current context other than
    `default` (the SDK honours it when DOCKER_HOST is unset)."""
    base = env.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    try:
        with open(os.path.join(base, "config.json"), "rb") as f:
            doc = json.loads(f.read(1 << 20))
    except (OSError, ValueError):
        return False
    name = doc.get("currentContext") if isinstance(doc, dict) else None
    return bool(name) and name != "default"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class EngineSocket:
    """A blocking reader of one engine, the same calls (and the same
    answers) as the SDK's `APIClient.containers` and `inspect_container`.

    Errors are one line (`RuntimeUnavailable`): an engine that cannot be
    reached reads as the runtime's client says it (`DockerEngine.client`),
    word for word, so the fast path and the SDK path show the same line."""

    def __init__(self, path: str, timeout: float = TIMEOUT_S) -> None:
        self.path = path
        self._conn = _UnixConnection(path, timeout)
        self._connected = False

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> EngineSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, url: str) -> tuple[int, bytes]:
        try:
            self._conn.request("GET", url, headers={"Host": "docker"})
            resp = self._conn.getresponse()
            body = resp.read(_MAX_BODY + 1)
        except OSError as exc:
            self._conn.close()
            if not self._connected:
                # The docker SDK's words (it fails on its first call, the
                # engine's version), so both paths say the same line.
                raise RuntimeUnavailable(
                    "the Docker engine is not reachable (Error while fetching server API "
                    f"version: ('Connection aborted.', {exc!r})): start it, or set DOCKER_HOST"
                ) from None
            raise RuntimeUnavailable(f"docker: {' '.join(str(exc).split())[:300]}") from None
        except http.client.HTTPException as exc:
            self._conn.close()
            raise RuntimeUnavailable(f"docker: the engine's answer is not HTTP ({exc!r})") from None
        self._connected = True
        if len(body) > _MAX_BODY:
            self._conn.close()
            raise RuntimeUnavailable(f"docker: the engine's answer to {url} is too large")
        return resp.status, body

    def _json(self, url: str) -> Any:
        status, body = self._get(url)
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = None
        if status >= 400:
            message = doc.get("message") if isinstance(doc, dict) else None
            text = str(message or body[:200].decode(errors="replace") or f"HTTP {status}")
            raise _HTTPError(status, "docker: " + " ".join(text.split())[:300])
        if doc is None:
            raise RuntimeUnavailable(f"docker: the engine's answer to {url} is not JSON")
        return doc

    def containers(self, *, all: bool = False, filters: dict[str, Any] | None = None) -> Any:
        """`GET /containers/json`: summaries (`Id`, `Labels`, ...)."""
        url = "/containers/json?all=" + ("1" if all else "0")
        if filters:
            url += "&filters=" + quote(json.dumps(_filter_lists(filters)), safe="")
        return self._json(url)

    def inspect_container(self, ref: str) -> dict[str, Any] | None:
        """`GET /containers/{ref}/json`, or None when there is no such
        container (the runtime's `_inspect`)."""
        try:
            doc = self._json(f"/containers/{quote(ref, safe='')}/json")
        except _HTTPError as exc:
            if exc.status == 404:
                return None
            raise
        return doc if isinstance(doc, dict) else None


class _HTTPError(RuntimeUnavailable):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _filter_lists(filters: dict[str, Any]) -> dict[str, list[str]]:
    """The engine wants each filter as a list (the SDK's `convert_filters`)."""
    out: dict[str, list[str]] = {}
    for key, value in filters.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        out[key] = [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
    return out
