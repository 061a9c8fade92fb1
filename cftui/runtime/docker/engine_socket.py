"""The Docker Engine API over its unix socket, read with a socket alone.

Why not the SDK: `cftui list` and `cftui status` only read (the container
listing and one inspect a container), and the docker SDK costs them more
than the whole rest of the command (requests, urllib3 and asyncio to load:
~130 ms, where a bare interpreter starts in ~40). So the read-only fast path
speaks the two GETs itself, on one keep-alive connection (`EngineSocket`).

Only where that reaches the engine the SDK would reach (`local_socket`):
`DOCKER_HOST` unset or `unix://`, no Docker CLI context chosen, no TLS
settings. Anything else (tcp://, ssh://, a context) is the SDK's to read,
and `local_socket` says None.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from cftui.errors import RuntimeUnavailable

DEFAULT_SOCKET = "/var/run/docker.sock"  # the SDK's and the CLI's default
TIMEOUT_S = 60.0  # the runtime's SDK client's timeout
_MAX_BODY = 64 << 20  # an inspect is a few KiB; a listing of 1000 containers a few MiB
_MAX_LINE = 64 << 10
_MAX_HEADERS = 100
# GETs written before their answers are read: the requests (~100 bytes
# each) and the answers waiting for us (inspects, ~5 KiB) stay well within
# a unix socket's buffers, so neither side blocks writing while the other does.
PIPELINE = 16


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


class EngineSocket:
    """A blocking reader of one engine, the same calls (and the same
    answers) as the SDK's `APIClient.containers` and `inspect_container`,
    as HTTP/1.1 GETs on one keep-alive connection.

    Not `http.client`: it loads `ssl` and the `email` package, as much
    import time as the rest of `cftui list`. The engine is this machine's
    own daemon, and two GETs need only a status line, `Content-Length` or
    chunks, each bounded.

    Errors are one line (`RuntimeUnavailable`): an engine that cannot be
    reached reads as the runtime's client says it (`DockerEngine.client`),
    word for word, so the fast path and the SDK path show the same line."""

    def __init__(self, path: str, timeout: float = TIMEOUT_S) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._file: Any = None
        self._answered = False  # the engine has answered once

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._file = None

    def __enter__(self) -> EngineSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except BaseException:
            sock.close()
            raise
        self._sock, self._file = sock, sock.makefile("rb")

    def _get(self, url: str) -> tuple[int, bytes]:
        return self._get_many([url])[0]

    def _get_many(self, urls: Sequence[str]) -> list[tuple[int, bytes]]:
        """The answers to `urls`, in order, pipelined (HTTP/1.1): up to
        `PIPELINE` requests written at once, then their answers read, so
        the engine answers them back to back and this process wakes once
        for many (one GET after another waits on the scheduler for each:
        milliseconds apiece on a loaded machine)."""
        answers: list[tuple[int, bytes]] = []
        try:
            while len(answers) < len(urls):
                done, fresh = len(answers), self._sock is None
                try:
                    self._exchange(urls[done : done + PIPELINE], answers)
                except _Dropped:
                    # A kept-alive connection the engine closed meanwhile, or
                    # after some answers: the rest afresh (not a fresh one
                    # that answered nothing).
                    self.close()
                    if fresh and len(answers) == done:
                        raise
        except OSError as exc:
            self.close()
            if not self._answered:
                # The docker SDK's words (it fails on its first call, the
                # engine's version), so both paths say the same line.
                raise RuntimeUnavailable(
                    "the Docker engine is not reachable (Error while fetching server API "
                    f"version: ('Connection aborted.', {exc!r})): start it, or set DOCKER_HOST"
                ) from None
            raise RuntimeUnavailable(f"docker: {' '.join(str(exc).split())[:300]}") from None
        except (_Dropped, ValueError):
            self.close()
            url = urls[min(len(answers), len(urls) - 1)]
            raise RuntimeUnavailable(f"docker: the engine's answer to {url} is not HTTP") from None
        return answers

    def _exchange(self, urls: Sequence[str], answers: list[tuple[int, bytes]]) -> None:
        """`urls` written at once, their answers appended to `answers` as
        they are read; `_Dropped` when the connection ends before the last
        (`answers` then holds those read)."""
        reused, before = self._sock is not None, len(answers)
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        requests = "".join(
            f"GET {url} HTTP/1.1\r\nHost: docker\r\nUser-Agent: cftui\r\n\r\n" for url in urls
        )
        try:
            self._sock.sendall(requests.encode("ascii"))
            for _ in urls:
                if self._sock is None:  # the engine said it closes after an answer
                    raise _Dropped()
                answers.append(self._answer())
        except (BrokenPipeError, ConnectionResetError):
            if reused or len(answers) > before:
                raise _Dropped() from None
            raise

    def _answer(self) -> tuple[int, bytes]:
        """One answer read: its status and body."""
        status_line = self._file.readline(_MAX_LINE)
        if not status_line:
            raise _Dropped()
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ValueError("status line")
        status = int(parts[1])
        headers: dict[bytes, bytes] = {}
        for _ in range(_MAX_HEADERS):
            line = self._file.readline(_MAX_LINE)
            if line in (b"\r\n", b"\n"):
                break
            if not line.endswith(b"\n"):
                raise ValueError("header")
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        else:
            raise ValueError("headers")
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = self._chunks()
        elif b"content-length" in headers:
            length = int(headers[b"content-length"])
            if not 0 <= length <= _MAX_BODY:
                raise ValueError("length")
            body = self._exactly(length)
        else:  # to the end: this connection is spent
            body = self._file.read(_MAX_BODY + 1)
            headers[b"connection"] = b"close"
        if len(body) > _MAX_BODY:
            raise ValueError("size")
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        self._answered = True
        return status, body

    def _exactly(self, n: int) -> bytes:
        data = self._file.read(n)
        if len(data) != n:
            raise ValueError("short body")
        return bytes(data)

    def _chunks(self) -> bytes:
        body = bytearray()
        while True:
            size = int(self._file.readline(_MAX_LINE).split(b";")[0].strip(), 16)
            if size == 0:
                for _ in range(_MAX_HEADERS):  # trailers, to the blank line
                    if self._file.readline(_MAX_LINE) in (b"\r\n", b"\n", b""):
                        return bytes(body)
                raise ValueError("trailers")
            if len(body) + size > _MAX_BODY:
                raise ValueError("size")
            body += self._exactly(size)
            self._exactly(2)  # the chunk's CRLF

    def _json(self, url: str) -> Any:
        return self._doc(url, *self._get(url))

    def _doc(self, url: str, status: int, body: bytes) -> Any:
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
        return self.inspect_containers([ref])[0]

    def inspect_containers(self, refs: Sequence[str]) -> list[dict[str, Any] | None]:
        """`inspect_container` of each of `refs`, in order, pipelined on
        this connection (`_get_many`)."""
        urls = [f"/containers/{quote(ref, safe='')}/json" for ref in refs]
        out: list[dict[str, Any] | None] = []
        for url, (status, body) in zip(urls, self._get_many(urls), strict=True):
            if status == 404:
                out.append(None)
                continue
            doc = self._doc(url, status, body)
            out.append(doc if isinstance(doc, dict) else None)
        return out


class _Dropped(Exception):
    """The engine closed a kept-alive connection before answering."""


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
