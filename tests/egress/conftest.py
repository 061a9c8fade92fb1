"""Real parts for the egress tests: `cf-egress` as a subprocess (mitmproxy 11
in its own venv), HTTP and HTTPS servers of our own on loopback with
certificates from a test CA (trustme), and clients that use the proxy."""

from __future__ import annotations

import gzip
import json
import os
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from cftui.botinit import init_bot
from cftui.fleet import FleetHome
from tests.egress.egress_support import CF_EGRESS, STREAM_GATE, WITH_TABLE

START_TIMEOUT = 30.0


class EchoHandler(BaseHTTPRequestHandler):
    """Answers with what it received, keep-alive, so a test can see both ends."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        if self.path.startswith("/stream"):
            return self._stream()
        if self.path.startswith("/gzip"):
            payload = gzip.compress(b'{"zipped": "GZ-MARKER"}')
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-encoding", "gzip")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return None
        if self.path.startswith("/big/"):
            return self._big(int(self.path.rsplit("/", 1)[1]))
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        payload = json.dumps(
            {
                "path": self.path,
                "method": self.command,
                "host": self.headers.get("host"),
                "got": body.decode("utf-8", "replace"),
                "reply": self.headers.get("x-reply", "pong"),
                "peer_port": self.client_address[1],  # one per upstream connection
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def _stream(self) -> None:
        """Two chunks; the second only once the client has read the first
        (or after 5 s), so a proxy that held the body back shows as `late`."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def chunk(data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        chunk(b"data: first\n\n")
        released = STREAM_GATE.wait(5)
        chunk(b"data: " + (b"in-time" if released else b"late") + b"\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _big(self, size: int) -> None:
        payload = (b"0123456789abcdef" * (size // 16 + 1))[:size]
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(size))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Server:
    host: str
    port: int
    httpd: ThreadingHTTPServer
    snis: list[str | None] = field(default_factory=list)  # TLS server names asked for


def _serve(context: ssl.SSLContext | None, snis: list | None = None) -> Iterator[Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    httpd.daemon_threads = True
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield Server("localhost", httpd.server_address[1], httpd, snis if snis is not None else [])
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def test_ca_pem(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("testca") / "ca.pem"
    test_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def https_server(test_ca: trustme.CA) -> Iterator[Server]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    test_ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    yield from _serve(ctx)


@pytest.fixture
def named_https_server(test_ca: trustme.CA) -> Iterator[Server]:
    """HTTPS on 127.0.0.1 with a certificate for `api.rebind.test` only (a
    name only the test's resolver knows); it notes the SNI of each handshake."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    test_ca.issue_cert("api.rebind.test").configure_cert(ctx)
    snis: list[str | None] = []
    ctx.sni_callback = lambda _sock, name, _ctx: snis.append(name)
    yield from _serve(ctx, snis)


@pytest.fixture(scope="session")
def http_server() -> Iterator[Server]:
    yield from _serve(None)


@dataclass
class Egress:
    """A running cf-egress and where it keeps things."""

    proc: subprocess.Popen
    port: int
    bot: str
    home: FleetHome
    confdir: Path
    ca_export: Path
    stderr_lines: list[str] = field(default_factory=list)
    stderr_closed: threading.Event = field(default_factory=threading.Event)

    @property
    def audit(self) -> Path:
        return self.home.audit_dir(self.bot)

    @property
    def ca_pem(self) -> Path:
        return self.ca_export / "ca.pem"

    def stats(self) -> dict:
        return json.loads((self.audit / "egress.stats.json").read_text())

    def wait_stats(self, pred, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        last: dict = {}
        while time.monotonic() < deadline:
            try:
                last = self.stats()
            except (OSError, ValueError):
                last = {}
            if last and pred(last):
                return last
            time.sleep(0.05)
        raise AssertionError(f"proxy stats never matched: {last}")

    def capture_lines(self) -> list[bytes]:
        try:
            return (self.audit / "traffic.enc.jsonl").read_bytes().splitlines()
        except FileNotFoundError:
            return []


@pytest.fixture
def bot(home: FleetHome) -> str:
    init_bot(home, "egbot")
    return "egbot"


@pytest.fixture
def start_egress(home: FleetHome, bot: str, tmp_path: Path, test_ca_pem: Path):
    """Start cf-egress for `bot` with the given allowlist and capture state."""
    started: list[Egress] = []

    def start(
        allow: list[str],
        capture: bool = False,
        extra: list[str] | None = None,
        resolver: dict[str, list[str]] | None = None,
    ) -> Egress:
        from cftui.egress_control import control_path, sync_control
        from cftui.identity import recipient_of

        home.update_bot(bot, capture=capture, egress_allow=allow)
        sync_control(home, bot)
        confdir = tmp_path / "confdir"
        ca_export = tmp_path / "ca-public"
        program = [str(CF_EGRESS)]
        if resolver is not None:
            python = str(CF_EGRESS.parent / "python")
            program = [python, "-c", WITH_TABLE, json.dumps(resolver)]
        cmd = [
            *program,
            "--listen",
            "127.0.0.1:0",
            "--bot",
            bot,
            "--audit-dir",
            str(home.audit_dir(bot)),
            "--confdir",
            str(confdir),
            "--recipient",
            recipient_of(home, bot),
            "--capture",
            "on" if capture else "off",
            "--control",
            str(control_path(home, bot)),
            "--ca-export",
            str(ca_export),
            "--upstream-ca",
            str(test_ca_pem),
            *[a for p in allow for a in ("--allow", p)],
            *(extra or []),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CF_")}
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        eg = Egress(proc, 0, bot, home, confdir, ca_export)
        started.append(eg)
        ready = threading.Event()

        def drain() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                eg.stderr_lines.append(line.rstrip("\n"))
                if "listening on" in line:
                    eg.port = int(line.split("listening on ", 1)[1].split()[0].rsplit(":", 1)[1])
                    ready.set()
            eg.stderr_closed.set()
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(START_TIMEOUT) or not eg.port:
            proc.kill()
            raise AssertionError(f"cf-egress did not start: {eg.stderr_lines}")
        return eg

    yield start
    for eg in started:
        if eg.proc.poll() is None:
            eg.proc.terminate()
            try:
                eg.proc.wait(10)
            except subprocess.TimeoutExpired:
                eg.proc.kill()
                eg.proc.wait()
