"""The proxy's HTTP/1.1 client to the providers: pooled keep-alive
connections, llhttp (httptools) to parse the answers, nothing else.

Why not aiohttp's client: under the issue's benchmark at 16 concurrent calls
a bare aiohttp-server pass-through costs 162 µs of CPU a call with aiohttp's
client and 122 µs with this one, and the whole proxy went from 248 to 169 µs
when it switched (bench/README.md); on one core that CPU is what the
gateway waits for. The proxy needs little of what a
general client does: no cookies, no redirects, no decompression (bytes go to
the gateway as the provider sent them), no proxies, one request per
connection at a time, a body that is already in memory.

What it does do, because a provider or the network can:
- every address of a name tried, IPv6 and IPv4 raced (Happy Eyeballs);
- TLS with certificate and host name checks (the system's CA store, or
  `SSL_CERT_FILE`);
- answers with Content-Length, chunked, or delimited by the connection's
  end; 1xx interim answers skipped; HEAD, 204 and 304 without a body;
- a connect timeout, and a read timeout that fires when the upstream stays
  silent that long (not while the proxy itself paused reading);
- backpressure: reading pauses while a slow gateway leaves > 1 MiB unsent;
- a pooled connection that the server closed is never reused; a reused one
  that fails before any answer byte is retried once on a new connection, for
  idempotent methods only (as aiohttp does: a POST is never sent twice);
- a connection goes back to the pool only after a complete answer;
  anything else closes it.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohappyeyeballs
import httptools
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # these always say Content-Length
PAUSE_ABOVE = 1024 * 1024  # bytes received but not yet taken by the caller
RESUME_BELOW = 256 * 1024
IDLE_KEEP_S = 15.0  # a pooled connection idle longer than this is closed, not reused
IDLE_PER_ORIGIN = 100
HAPPY_EYEBALLS_S = 0.25  # the next address family is tried after this long


class UpstreamBrokeOff(ConnectionError):
    """The upstream closed the connection or sent something that is not
    HTTP before its answer was complete."""


@dataclass(frozen=True)
class Origin:
    """Where a provider lives: scheme, host and port, parsed once."""

    scheme: str
    host: str
    port: int
    host_header: str  # host[:port], as the Host header wants it

    @classmethod
    def of(cls, url: URL) -> Origin:
        host = url.raw_host or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        shown = f"[{host}]" if ":" in host else host
        default = url.is_default_port()
        return cls(url.scheme, host, port, shown if default else f"{shown}:{port}")


class Answer:
    """One upstream answer: status and headers first, then the body."""

    def __init__(self, conn: _Connection, status: int, headers: CIMultiDictProxy[str]) -> None:
        self._conn = conn
        self.status = status
        self.headers = headers
        length = headers.get("content-length")
        self.content_length = int(length) if length is not None and length.isdigit() else None

    async def read(self) -> bytes:
        """The whole body."""
        parts = []
        while (chunk := await self._next_chunk()) is not None:
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, de-chunked, each piece as soon as it is here."""
        while (chunk := await self._next_chunk()) is not None:
            yield chunk

    async def _next_chunk(self) -> bytes | None:
        """All that arrived since the last call (waiting for some), or None
        at the end; the answer's error once what came before it is taken."""
        conn = self._conn
        while True:
            chunk = conn.take()
            if chunk:
                return chunk
            if conn.complete:
                return None
            if conn.error is not None:
                raise conn.error
            await conn.wait()

    def release(self) -> None:
        """Back to the pool if the answer was read to its end, else closed."""
        self._conn.finish_exchange()

    def close(self) -> None:
        self._conn.abort()


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one exchange at a time."""

    def __init__(self, pool: UpstreamPool, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset(None)

    def _reset(self, method: str | None) -> None:
        self.method = method
        self.parser = httptools.HttpResponseParser(self)
        self.got_bytes = False
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.until_eof = False
        self.complete = False
        self.reusable = False
        self.error: BaseException | None = None
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.waiter: asyncio.Future | None = None
        self.last_read = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a TCP connection's is an asyncio.Transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.method is None or self.complete or self.error is not None:
            return
        if self.until_eof and self.headers_done:
            self._complete(reusable=False)  # the answer was delimited by the close
            return
        what = "closed the connection" if exc is None else f"connection lost: {exc}"
        self._fail(UpstreamBrokeOff(f"upstream {what} before the answer was complete"))

    def data_received(self, data: bytes) -> None:
        if self.method is None or self.complete:  # bytes nobody asked for: not HTTP/1.1
            self.reusable = False
            self.abort()
            return
        self.got_bytes = True
        self.last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamBrokeOff("upstream switched protocols, which the proxy refuses"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamBrokeOff(f"upstream sent a malformed answer: {exc}"))

    # --- llhttp callbacks ----------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.headers_done:  # a second answer to one request: this connection is confused
            self.reusable = False
            self.until_eof = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.raw_headers = []  # an interim answer: the real one follows
            return
        self.status = status
        self.headers_done = True
        if self.method == "HEAD":
            # llhttp would wait for the body a Content-Length announces.
            self._complete(reusable=False)
            return
        if status not in (204, 304):
            names = {name.lower() for name, _ in self.raw_headers}
            self.until_eof = b"content-length" not in names and b"transfer-encoding" not in names
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > PAUSE_ABOVE and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.headers_done:
            return  # the end of an interim answer
        if not self.complete:
            self._complete(reusable=self.parser.should_keep_alive())
        else:
            self.reusable = False

    # --- the exchange ----------------------------------------------------------------
    def send(self, method: str, head: bytes, body: bytes) -> None:
        self._reset(method)
        self.last_read = self.loop.time()
        assert self.transport is not None
        if body and len(body) > 64 * 1024:
            self.transport.writelines((head, body))
        else:
            self.transport.write(head + body)
        timeout = self.pool.read_timeout
        if timeout:
            self.timer = self.loop.call_at(self.last_read + timeout, self._check_silence)

    def _check_silence(self) -> None:
        """The read timeout: one timer an exchange, moved on only when it fires."""
        self.timer = None
        if self.complete or self.error is not None:
            return
        timeout = self.pool.read_timeout
        if not timeout:  # no read timeout: no timer was set
            return
        now = self.loop.time()
        if self.paused:  # the proxy stopped reading, not the upstream stopping sending
            self.last_read = now
        elif now - self.last_read >= timeout:
            self._fail(TimeoutError(f"upstream sent nothing for {timeout:g} s"))
            self.abort()
            return
        self.timer = self.loop.call_at(self.last_read + timeout, self._check_silence)

    def _complete(self, reusable: bool) -> None:
        self.complete = True
        self.reusable = reusable and not self.closed
        self._stop_timer()
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None and not self.complete:
            self.error = exc
        self._stop_timer()
        self._wake()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        self.waiter = self.loop.create_future()
        await self.waiter

    def take(self) -> bytes:
        """Everything received and not yet taken, as one piece."""
        chunks = self.chunks
        if not chunks:
            return b""
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.last_read = self.loop.time()
            self.transport.resume_reading()
        return data

    async def head(self) -> Answer:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            await self.wait()
        headers = CIMultiDict(
            (n.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
            for n, v in self.raw_headers
        )
        return Answer(self, self.status, CIMultiDictProxy(headers))

    def finish_exchange(self) -> None:
        if self.method is None:
            return  # finished already: released twice, or aborted
        if self.complete and self.reusable and not self.chunks:
            self.method = None
            self._stop_timer()
            self.pool.put_back(self)
        else:
            self.abort()

    def abort(self) -> None:
        self._stop_timer()
        self.method = None
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()
        self.pool.forget(self)


class UpstreamPool:
    """Keep-alive connections per origin, and the one call that uses them."""

    def __init__(
        self,
        *,
        connect_timeout: float | None,
        read_timeout: float | None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._all: set[_Connection] = set()

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def request(
        self, origin: Origin, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Answer:
        """Send one request and wait for the answer's status and headers.
        Raises OSError (unreachable), TimeoutError, or UpstreamBrokeOff."""
        head = _request_head(origin, method, target, headers, body)
        conn = self._checkout(origin)
        if conn is not None:
            try:
                return await _exchange(conn, method, head, body)
            except UpstreamBrokeOff:
                if conn.got_bytes or method not in IDEMPOTENT:
                    raise
                # The server closed it while it sat idle, before reading this: once more.
        return await _exchange(await self._connect(origin), method, head, body)

    def _checkout(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            gone = conn.closed or conn.transport is None or conn.transport.is_closing()
            if gone or now - conn.idle_since > IDLE_KEEP_S:
                conn.abort()
            else:
                return conn
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        """Resolve, connect (Happy Eyeballs, as aiohttp does: a host whose
        IPv6 goes nowhere is reached over IPv4 after 250 ms, not after the
        connect timeout; uvloop's own create_connection cannot), then TLS."""
        tls = self._tls() if origin.scheme == "https" else None
        conn = _Connection(self, origin)
        async with asyncio.timeout(self.connect_timeout):
            infos = await self.loop.getaddrinfo(origin.host, origin.port, type=socket.SOCK_STREAM)
            sock = await aiohappyeyeballs.start_connection(
                infos, happy_eyeballs_delay=HAPPY_EYEBALLS_S, interleave=1
            )
            try:
                await self.loop.create_connection(
                    lambda: conn,
                    sock=sock,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
            except BaseException:
                sock.close()
                raise
        self._all.add(conn)
        return conn

    def put_back(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.origin, [])
        if len(idle) >= IDLE_PER_ORIGIN:
            conn.abort()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        self._all.discard(conn)
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)

    def close(self) -> None:
        """Close every connection, idle or busy."""
        for conn in list(self._all):
            conn.abort()
        self._idle.clear()


async def _exchange(conn: _Connection, method: str, head: bytes, body: bytes) -> Answer:
    conn.send(method, head, body)
    try:
        return await conn.head()
    except BaseException:  # cancelled too: a half-done exchange never goes back to the pool
        conn.abort()
        raise


def _request_head(
    origin: Origin, method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"]
    for name, value in headers:
        lines.append(f"{name}: {value}\r\n")
    if body or method in BODY_METHODS:
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    head = "".join(lines)
    # Each piece ends in exactly one line break (the first in two): any other
    # is a header trying to start a line of its own.
    breaks = len(lines) + 1
    if head.count("\n") != breaks or head.count("\r") != breaks:
        raise ValueError("a header name or value holds a line break")
    return head.encode("utf-8", "surrogateescape")
