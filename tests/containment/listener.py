"""The test's own server for the escape suite: whatever reaches it is logged.

Runs in a container of the test's making. TCP on the ports in argv (each
connection logged with its port, peer and first bytes, then answered with
a small HTTP 200), and a DNS responder on UDP 53 that answers every query
with one A record. One JSON line a contact on stdout: the test reads the
container's log to know what got through.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading


def log(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def serve(conn: socket.socket, port: int, peer: str) -> None:
    conn.settimeout(2)
    data = b""
    with contextlib.suppress(OSError):
        data = conn.recv(4096)
    log(kind="tcp", port=port, peer=peer, data=data[:1000].hex())
    with contextlib.suppress(OSError):
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nlistener-ok"
        )
    conn.close()


def tcp(port: int) -> None:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(128)
    while True:
        conn, peer = s.accept()
        threading.Thread(target=serve, args=(conn, port, peer[0]), daemon=True).start()


def dns() -> None:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", 53))
    while True:
        query, peer = u.recvfrom(512)
        log(kind="dns", peer=peer[0], data=query.hex())
        end = 12
        while end < len(query) and query[end]:
            end += query[end] + 1
        question = query[12 : end + 5]
        header = query[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
        answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([10, 9, 9, 9])
        u.sendto(header + question + answer, peer)


def main() -> None:
    for port in map(int, sys.argv[1:]):
        threading.Thread(target=tcp, args=(port,), daemon=True).start()
    threading.Thread(target=dns, daemon=True).start()
    log(kind="ready")
    threading.Event().wait()


if __name__ == "__main__":
    main()
