"""The LLM proxy's own HTTP/1.1 client (`cfproxies.llm_proxy.upstream`),
against raw loopback servers that send exactly the bytes each case needs:
keep-alive reuse, every way an answer can be delimited, interim answers,
timeouts, servers that break off, stale pooled connections, backpressure,
TLS and header injection."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from cfproxies.llm_proxy import upstream as up
from cfproxies.llm_proxy.upstream import Origin, UpstreamBrokeOff, UpstreamPool
from yarl import URL

from tests.proxies.proxyhelpers import self_signed_tls

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


@dataclass
class Server:
    """A raw TCP server: counts connections and the requests it read."""

    handler: Handler
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length) if length else b""
        self.requests.append(head + body)
        return head + body

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[tuple[Server, Origin]]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler, tls: ssl.SSLContext | None = None) -> tuple[Server, Origin]:
        server = Server(handler)
        srv = await asyncio.start_server(server.serve, "127.0.0.1", 0, ssl=tls)
        servers.append(srv)
        server.port = srv.sockets[0].getsockname()[1]
        scheme = "https" if tls else "http"
        host = "localhost" if tls else "127.0.0.1"
        return server, Origin.of(URL(f"{scheme}://{host}:{server.port}"))

    yield start
    for srv in servers:
        srv.close()


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    p = UpstreamPool(connect_timeout=5.0, read_timeout=5.0)
    yield p
    p.close()


def answer(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def keep_answering(reader, writer, server: Server) -> None:
    while await server.read_request(reader) is not None:
        writer.write(answer())
        await writer.drain()


async def test_keep_alive_connections_are_reused(serve, pool) -> None:
    server, origin = await serve(keep_answering)
    for _ in range(3):
        ans = await pool.request(origin, "POST", "/v1/x", [("X-A", "1")], b'{"q":1}')
        assert ans.status == 200 and await ans.read() == b'{"ok":true}'
        ans.release()
    assert server.connections == 1 and len(server.requests) == 3
    ans.release()  # a second release changes nothing
    assert len(pool._idle[origin]) == 1
    first = server.requests[0]
    assert first.startswith(b"POST /v1/x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % server.port)
    assert b"X-A: 1\r\n" in first and b"Content-Length: 7\r\n" in first
    assert first.endswith(b'\r\n\r\n{"q":1}')


async def test_an_unread_answer_closes_its_connection(serve, pool) -> None:
    server, origin = await serve(keep_answering)
    ans = await pool.request(origin, "GET", "/", [], b"")
    ans.release()  # the body was never read: the connection cannot be reused
    ans = await pool.request(origin, "GET", "/", [], b"")
    await ans.read()
    ans.release()
    assert server.connections == 2


async def test_chunked_answer_arrives_piece_by_piece(serve, pool) -> None:
    go_on = asyncio.Event()

    async def chunked(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await go_on.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await writer.drain()
        await server.read_request(reader)  # keep the connection open

    _, origin = await serve(chunked)
    ans = await pool.request(origin, "POST", "/", [], b"{}")
    chunks = ans.iter_chunks()
    assert await asyncio.wait_for(anext(chunks), 2) == b"first"  # before the rest is sent
    go_on.set()
    assert [c async for c in chunks] == [b"second"]
    ans.release()
    assert len(pool._idle[origin]) == 1  # complete: back in the pool


async def test_answer_delimited_by_the_close(serve, pool) -> None:
    async def until_eof(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ")
        await writer.drain()
        writer.write(b"it")
        writer.close()

    _, origin = await serve(until_eof)
    ans = await pool.request(origin, "GET", "/", [], b"")
    assert await ans.read() == b"all of it"
    ans.release()
    assert not pool._idle.get(origin)


async def test_interim_answers_are_skipped(serve, pool) -> None:
    async def interim(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
        writer.write(answer(b"done"))
        await writer.drain()
        await server.read_request(reader)

    _, origin = await serve(interim)
    ans = await pool.request(origin, "POST", "/", [], b"{}")
    assert ans.status == 200 and "link" not in ans.headers
    assert await ans.read() == b"done"


async def test_head_and_no_content_answers_have_no_body(serve, pool) -> None:
    async def bodiless(reader, writer, server: Server) -> None:
        while (req := await server.read_request(reader)) is not None:
            if req.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

    server, origin = await serve(bodiless)
    ans = await pool.request(origin, "HEAD", "/", [], b"")
    assert ans.status == 200 and ans.content_length == 10
    assert await asyncio.wait_for(ans.read(), 2) == b""
    ans.release()  # llhttp would wait for the 10 bytes: never reused
    for _ in range(2):
        ans = await pool.request(origin, "DELETE", "/", [], b"")
        assert ans.status == 204 and await asyncio.wait_for(ans.read(), 2) == b""
        ans.release()
    assert server.connections == 2


async def test_repeated_headers_stay_repeated(serve, pool) -> None:
    async def cookies(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        writer.write(answer(extra=b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"))
        await writer.drain()

    _, origin = await serve(cookies)
    ans = await pool.request(origin, "GET", "/", [], b"")
    assert ans.headers.getall("set-cookie") == ["a=1", "b=2"]


async def test_server_breaking_off_mid_body(serve, pool) -> None:
    async def short(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
        await writer.drain()

    _, origin = await serve(short)
    ans = await pool.request(origin, "POST", "/", [], b"{}")
    with pytest.raises(UpstreamBrokeOff, match="before the answer was complete"):
        await ans.read()


async def test_malformed_answer(serve, pool) -> None:
    async def garbage(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    _, origin = await serve(garbage)
    with pytest.raises(UpstreamBrokeOff, match="malformed"):
        await pool.request(origin, "POST", "/", [], b"{}")


async def test_bytes_after_a_complete_answer_close_the_connection(serve, pool) -> None:
    async def chatty(reader, writer, server: Server) -> None:
        while await server.read_request(reader) is not None:
            writer.write(answer() + b"HTTP/1.1 200 OK\r\n")
            await writer.drain()

    server, origin = await serve(chatty)
    for _ in range(2):
        ans = await pool.request(origin, "GET", "/", [], b"")
        assert await ans.read() == b'{"ok":true}'
        await asyncio.sleep(0.05)
        ans.release()
    assert server.connections == 2


@pytest.mark.parametrize("stall_after", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsome"])
async def test_read_timeout_when_the_upstream_goes_silent(serve, stall_after) -> None:
    async def silent(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        writer.write(stall_after)
        await writer.drain()
        await asyncio.sleep(5)

    _, origin = await serve(silent)
    pool = UpstreamPool(connect_timeout=5.0, read_timeout=0.3)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(TimeoutError, match=r"nothing for 0\.3 s"):
        ans = await pool.request(origin, "POST", "/", [], b"{}")
        await ans.read()
    assert 0.25 < loop.time() - t0 < 2.0
    pool.close()


async def test_a_slow_but_steady_upstream_does_not_time_out(serve) -> None:
    async def trickle(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(6):  # 0.6 s in all, never 0.3 s silent
            await asyncio.sleep(0.1)
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    _, origin = await serve(trickle)
    pool = UpstreamPool(connect_timeout=5.0, read_timeout=0.3)
    ans = await pool.request(origin, "POST", "/", [], b"{}")
    assert await ans.read() == b"x" * 6
    pool.close()


async def test_connection_refused_is_an_os_error(pool) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        with pytest.raises(ConnectionRefusedError):
            await pool.request(Origin.of(URL(f"http://127.0.0.1:{port}")), "GET", "/", [], b"")


async def test_every_address_of_a_name_is_tried(serve, pool, monkeypatch) -> None:
    """A name with several addresses (IPv6 and IPv4, say): one that refuses
    is passed over for the next (Happy Eyeballs, as aiohttp's client does)."""
    import socket

    server, origin = await serve(keep_answering)
    loop = asyncio.get_running_loop()

    async def two_addresses(host, port, **kwargs):
        assert host == "127.0.0.1"
        stream = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
        with socket.socket() as s:  # bound, never listening: refuses
            s.bind(("127.0.0.2", 0))
            dead = s.getsockname()[1]
        return [(*stream, ("127.0.0.2", dead)), (*stream, ("127.0.0.1", port))]

    monkeypatch.setattr(loop, "getaddrinfo", two_addresses)
    ans = await pool.request(origin, "GET", "/", [], b"")
    assert await ans.read() == b'{"ok":true}'
    assert server.connections == 1


async def test_a_pooled_connection_the_server_closed_is_not_reused(serve, pool) -> None:
    async def one_then_close(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        writer.write(answer())
        await writer.drain()  # then the server's idle timeout: close

    server, origin = await serve(one_then_close)
    for _ in range(2):
        ans = await pool.request(origin, "POST", "/", [], b"{}")
        assert await ans.read() == b'{"ok":true}'
        ans.release()
        await asyncio.sleep(0.1)  # the close reaches the pool
    assert server.connections == 2 and len(server.requests) == 2


@pytest.mark.parametrize(("method", "retried"), [("GET", True), ("POST", False)])
async def test_a_reused_connection_lost_before_any_answer(serve, pool, method, retried) -> None:
    """The race with a server's idle timeout: the request goes out on a
    connection the server is closing. A GET is sent again on a new
    connection; a POST is not (it may have been read), the caller sees why."""

    async def close_on_second(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        writer.write(answer())
        await writer.drain()
        await server.read_request(reader)  # read it, answer nothing, close

    server, origin = await serve(close_on_second)
    ans = await pool.request(origin, method, "/", [], b"")
    await ans.read()
    ans.release()
    if retried:
        ans = await pool.request(origin, method, "/", [], b"")
        assert await ans.read() == b'{"ok":true}'
        assert server.connections == 2 and len(server.requests) == 3
    else:
        with pytest.raises(UpstreamBrokeOff):
            await pool.request(origin, method, "/", [], b"")
        assert len(server.requests) == 2  # sent once, never twice


async def test_cancelled_call_closes_its_connection(serve, pool) -> None:
    async def slow(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        await asyncio.sleep(5)

    _, origin = await serve(slow)
    task = asyncio.ensure_future(pool.request(origin, "POST", "/", [], b"{}"))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not pool._idle.get(origin) and not pool._all


async def test_backpressure_pauses_reading(serve, pool) -> None:
    size = 6 * 1024 * 1024

    async def flood(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        writer.write(b"z" * size)
        await writer.drain()

    _, origin = await serve(flood)
    ans = await pool.request(origin, "GET", "/", [], b"")
    await asyncio.sleep(0.3)  # nobody reads: the proxy must stop reading too
    conn = ans._conn
    assert conn.paused and conn.buffered < up.PAUSE_ABOVE + 1024 * 1024
    got = 0
    async for chunk in ans.iter_chunks():
        got += len(chunk)
    assert got == size


@pytest.mark.parametrize(
    "header", [("X-Evil", "a\r\nX-Injected: 1"), ("X-Evil", "a\nb"), ("X-E\rvil", "a")]
)
async def test_header_with_a_line_break_is_refused(serve, pool, header) -> None:
    server, origin = await serve(keep_answering)
    with pytest.raises(ValueError, match="line break"):
        await pool.request(origin, "GET", "/", [header], b"")
    assert server.connections == 0


async def test_tls_checks_the_certificate(serve, tmp_path) -> None:
    server_ctx, client_ctx, _ = self_signed_tls(tmp_path)
    server, origin = await serve(keep_answering, tls=server_ctx)
    trusting = UpstreamPool(connect_timeout=5.0, read_timeout=5.0, ssl_context=client_ctx)
    for _ in range(2):
        ans = await trusting.request(origin, "POST", "/", [], b"{}")
        assert await ans.read() == b'{"ok":true}'
        ans.release()
    assert server.requests[0].startswith(b"POST / HTTP/1.1\r\nHost: localhost:%d" % server.port)
    assert server.connections == 1
    trusting.close()

    default = UpstreamPool(connect_timeout=5.0, read_timeout=5.0)  # the system's CAs
    with pytest.raises(ssl.SSLCertVerificationError):
        await default.request(origin, "GET", "/", [], b"")
    wrong_name = Origin("https", "127.0.0.1", server.port, f"127.0.0.1:{server.port}")
    with pytest.raises(ssl.SSLCertVerificationError):
        await UpstreamPool(connect_timeout=5.0, read_timeout=5.0, ssl_context=client_ctx).request(
            wrong_name, "GET", "/", [], b""
        )
    default.close()


def test_origin_host_header() -> None:
    assert Origin.of(URL("https://api.anthropic.com")).host_header == "api.anthropic.com"
    assert Origin.of(URL("https://api.anthropic.com")).port == 443
    assert Origin.of(URL("http://127.0.0.1:8080/v1")).host_header == "127.0.0.1:8080"
    assert Origin.of(URL("http://[::1]:8080")).host_header == "[::1]:8080"
