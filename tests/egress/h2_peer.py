"""An HTTP/2-only server and client for the egress tests, on the `h2` library.

Run with the egress venv's Python (mitmproxy brings `h2`):

    python h2_peer.py serve CERT_AND_KEY_PEM      # prints its port, serves until killed
    python h2_peer.py get PROXY_PORT HOST PORT CA_PEM REQUESTS_JSON

The server speaks only h2 (ALPN) and answers each stream with 201 and a JSON
echo of what it got. The client CONNECTs through the proxy, insists on h2,
sends every request of REQUESTS_JSON (`[[method, path, body, marker], ...]`,
a fifth item overrides `:authority`)
on one connection before reading any answer, and prints the answers as JSON.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
import threading

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, RequestReceived, ResponseReceived, StreamEnded


def _serve_one(raw: socket.socket, ctx: ssl.SSLContext) -> None:
    with ctx.wrap_socket(raw, server_side=True) as sock:
        if sock.selected_alpn_protocol() != "h2":
            return
        conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        streams: dict[int, dict] = {}
        while data := sock.recv(65536):
            for ev in conn.receive_data(data):
                if isinstance(ev, RequestReceived):
                    streams[ev.stream_id] = {"headers": dict(ev.headers), "body": b""}
                elif isinstance(ev, DataReceived):
                    streams[ev.stream_id]["body"] += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, StreamEnded):
                    got = streams.pop(ev.stream_id)
                    h = got["headers"]
                    body = json.dumps(
                        {
                            "method": h[":method"],
                            "path": h[":path"],
                            "authority": h[":authority"],
                            "got": got["body"].decode(),
                            "reply": h.get("x-marker", ""),
                        }
                    ).encode()
                    conn.send_headers(
                        ev.stream_id,
                        [
                            (":status", "201"),
                            ("content-type", "application/json"),
                            ("content-length", str(len(body))),
                        ],
                    )
                    conn.send_data(ev.stream_id, body, end_stream=True)
            sock.sendall(conn.data_to_send())


def serve(cert_and_key: str) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_and_key)
    ctx.set_alpn_protocols(["h2"])
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    while True:
        raw, _ = listener.accept()
        threading.Thread(target=_serve_one, args=(raw, ctx), daemon=True).start()


def _connect(proxy_port: int, host: str, port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        more = sock.recv(4096)
        if not more:
            raise SystemExit(f"proxy closed the CONNECT: {head!r}")
        head += more
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"CONNECT refused: {head!r}")
    return sock


def get(proxy_port: int, host: str, port: int, ca: str, requests: list[list[str]]) -> None:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["h2"])
    sock = ctx.wrap_socket(_connect(proxy_port, host, port), server_hostname=host)
    alpn = sock.selected_alpn_protocol()
    if alpn != "h2":
        raise SystemExit(f"the proxy did not speak h2 to the client (ALPN {alpn!r})")
    conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    answers: dict[int, dict] = {}
    for method, path, body, marker, *authority in requests:
        sid = conn.get_next_available_stream_id()
        data = body.encode()
        conn.send_headers(
            sid,
            [
                (":method", method),
                (":path", path),
                (":authority", authority[0] if authority else f"{host}:{port}"),
                (":scheme", "https"),
                ("content-length", str(len(data))),
                ("x-marker", marker),
            ],
            end_stream=not data,
        )
        if data:
            conn.send_data(sid, data, end_stream=True)
        answers[sid] = {"status": None, "body": b""}
    sock.sendall(conn.data_to_send())
    open_streams = set(answers)
    while open_streams:
        data = sock.recv(65536)
        if not data:
            raise SystemExit("connection closed before every answer came")
        for ev in conn.receive_data(data):
            if isinstance(ev, ResponseReceived):
                answers[ev.stream_id]["status"] = int(dict(ev.headers)[":status"])
            elif isinstance(ev, DataReceived):
                answers[ev.stream_id]["body"] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, StreamEnded):
                open_streams.discard(ev.stream_id)
        sock.sendall(conn.data_to_send())
    sock.close()
    out = [{"status": a["status"], "body": json.loads(a["body"])} for a in answers.values()]
    print(json.dumps({"alpn": alpn, "answers": out}))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        get(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], json.loads(sys.argv[6]))
