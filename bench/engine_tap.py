"""A counting relay in front of the Docker engine's socket, for the
benchmarks: a measured process gets `DOCKER_HOST=unix://<tap>` and talks to
the real engine through it, so every connection it opens and every API
call it makes is counted, with the bytes each way, without touching its
code. The relay runs its own event loop in a thread of the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httptools

_VERSION = re.compile(r"^/v\d+\.\d+")
# The objects whose second path part is a name or id (`/containers/ID/json`).
_OBJECTS = {"containers", "images", "networks", "volumes", "exec", "plugins"}
_VERBS = {"json", "create", "prune", "load", "build", "search", "get"}


def engine_socket() -> str:
    """The engine's socket path: `DOCKER_HOST` when it is `unix://`, else the default."""
    host = os.environ.get("DOCKER_HOST", "")
    return host.removeprefix("unix://") if host.startswith("unix://") else "/var/run/docker.sock"


def endpoint(method: str, url: str) -> str:
    """`GET /containers/{id}/json` for `GET /v1.41/containers/cf-x/json?size=0`."""
    path = _VERSION.sub("", url.split("?", 1)[0])
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] in _OBJECTS and parts[1] not in _VERBS:
        # An image's name may hold slashes: all of it up to the verb.
        end = len(parts) - 1 if parts[0] == "images" and len(parts) > 2 else 2
        parts[1:end] = ["{id}"]
    return f"{method} /{'/'.join(parts)}"


@dataclass
class Counts:
    """What went through the tap: per endpoint [calls, bytes up, bytes down]."""

    connections: int = 0
    open_now: int = 0
    peak_open: int = 0
    calls: dict[str, list[int]] = field(default_factory=dict)

    def copy(self) -> Counts:
        return Counts(
            self.connections,
            self.open_now,
            self.peak_open,
            {k: list(v) for k, v in self.calls.items()},
        )

    def since(self, before: Counts) -> Counts:
        """What happened between `before` and this snapshot."""
        calls = {}
        for key, (n, up, down) in self.calls.items():
            n0, up0, down0 = before.calls.get(key, [0, 0, 0])
            if n - n0 or up - up0 or down - down0:
                calls[key] = [n - n0, up - up0, down - down0]
        return Counts(self.connections - before.connections, self.open_now, self.peak_open, calls)

    @property
    def total_calls(self) -> int:
        return sum(v[0] for v in self.calls.values())

    @property
    def bytes_down(self) -> int:
        return sum(v[2] for v in self.calls.values())


class _Conn:
    """The parser's callbacks for one client connection (requests in order:
    the SDK sends the next only after the last answer, so the answer bytes
    belong to the last request seen)."""

    def __init__(self, tap: EngineTap) -> None:
        self.tap = tap
        self.url = b""
        self.current = "(before a request)"
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)

    def on_message_begin(self) -> None:
        self.url = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        method = self.parser.get_method().decode()
        self.current = endpoint(method, self.url.decode(errors="replace"))
        self.tap._add(self.current, calls=1)

    def feed(self, data: bytes) -> None:
        if self.parser is not None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:  # an upgrade (attach): relay, stop parsing
                self.parser = None
        self.tap._add(self.current, up=len(data))


class EngineTap:
    """Listen on `path`, relay to the engine's socket, count."""

    def __init__(self, path: Path, engine: str | None = None) -> None:
        self.path = path
        self.engine = engine or engine_socket()
        self._counts = Counts()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> EngineTap:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.start_unix_server(self._serve, path=str(self.path)), self._loop
        )
        self._server = fut.result(timeout=10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def snapshot(self) -> Counts:
        with self._lock:
            return self._counts.copy()

    def _add(self, key: str, *, calls: int = 0, up: int = 0, down: int = 0) -> None:
        with self._lock:
            entry = self._counts.calls.setdefault(key, [0, 0, 0])
            entry[0] += calls
            entry[1] += up
            entry[2] += down

    def _opened(self, delta: int) -> None:
        with self._lock:
            c = self._counts
            c.open_now += delta
            if delta > 0:
                c.connections += 1
                c.peak_open = max(c.peak_open, c.open_now)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(self)
        self._opened(+1)
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.engine)
        except OSError:
            self._opened(-1)
            writer.close()
            return

        async def client_to_engine() -> None:
            while data := await reader.read(65536):
                conn.feed(data)
                up_writer.write(data)
                await up_writer.drain()
            with contextlib.suppress(OSError):
                up_writer.write_eof()

        async def engine_to_client() -> None:
            while data := await up_reader.read(65536):
                self._add(conn.current, down=len(data))
                writer.write(data)
                await writer.drain()
            with contextlib.suppress(OSError):
                writer.write_eof()

        try:
            await asyncio.gather(client_to_engine(), engine_to_client())
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._opened(-1)
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()
