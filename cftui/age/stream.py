"""The age v1 payload (STREAM: 64 KiB ChaCha20-Poly1305 chunks) on
`cryptography`, whose OpenSSL cipher is SIMD-accelerated: snapshot streams,
encrypted and decrypted through a pair of fixed buffers of `BATCH` chunks
(plaintext and ciphertext move through them with `readinto` and one write per
batch), and small files decrypted in memory (the sealed capture session keys).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from cftui.age.errors import AgeError
from cftui.age.header import LineReader, header_bytes, hkdf, read_file_key

CHUNK = 64 * 1024
TAG = 16
SEALED = CHUNK + TAG
BATCH = 16  # chunks per read and per write: 1 MiB, the size of the widened pipes
_LAST = b"\x01"
_NOT_LAST = b"\x00"


class Readable(Protocol):
    def readinto(self, buf: memoryview, /) -> int | None: ...


class Source(Readable, LineReader, Protocol):
    """A file the header and then the payload are read from."""


AfterWrite = Callable[[int], None] | None


class Payload:
    """The STREAM cipher of one file: 64 KiB chunks, each sealed under a nonce
    of an 11-byte big-endian counter and a last-chunk flag."""

    def __init__(self, file_key: bytes, nonce: bytes) -> None:
        self.aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
        self.counter = 0

    def _nonce(self, last: bool) -> bytes:
        if self.counter >= 1 << 88:  # pragma: no cover - 2^88 chunks
            raise AgeError("payload too long")
        return self.counter.to_bytes(11, "big") + (_LAST if last else _NOT_LAST)

    def seal(self, plain: memoryview, out: memoryview, last: bool) -> None:
        """Encrypt one chunk into `out` (len(plain) + 16 bytes)."""
        self.aead.encrypt_into(self._nonce(last), plain, None, out)
        self.counter += 1

    def open(self, sealed: memoryview, out: memoryview, last: bool) -> bool:
        """Decrypt one chunk into `out`; False if it does not authenticate as
        a chunk at this position with this flag."""
        try:
            self.aead.decrypt_into(self._nonce(last), sealed, None, out)
        except InvalidTag:
            return False
        self.counter += 1
        return True


def open_payload(src: Source, identity: X25519PrivateKey) -> Payload:
    """Read and authenticate the header of `src`, leaving it at the first chunk."""
    file_key = read_file_key(src, identity)
    nonce = bytearray(16)
    if _read_full(src, nonce) != len(nonce):
        raise AgeError("truncated file: it ends before its payload")
    return Payload(file_key, bytes(nonce))


# --- streaming ---------------------------------------------------------------


def _read_full(src: Readable, buf: bytearray | memoryview) -> int:
    """Fill `buf` from `src` (pipes return short reads); the bytes read, fewer
    only at end of file."""
    view = memoryview(buf)
    got = 0
    while got < len(view):
        n = src.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _write_all(fd: int, data: memoryview | bytes, after_write: AfterWrite) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
        if after_write is not None:
            after_write(n)


def encrypt(src: Readable, dst: int, recipient: bytes, after_write: AfterWrite = None) -> None:
    """Encrypt all of `src` to the file descriptor `dst` for `recipient` (raw
    32 bytes). `after_write(n)` is called after each write, with its size."""
    file_key, nonce = os.urandom(16), os.urandom(16)
    _write_all(dst, header_bytes(file_key, recipient) + nonce, after_write)
    payload = Payload(file_key, nonce)
    plain, sealed = memoryview(bytearray(BATCH * CHUNK)), memoryview(bytearray(BATCH * SEALED))
    held = 0  # a full chunk carried over: it is the last one if nothing follows it
    while True:
        n = held + _read_full(src, plain[held:])
        eof = n < len(plain)
        chunks = max(1, -(-n // CHUNK)) if eof else BATCH - 1
        out = 0
        for i in range(chunks):
            piece = plain[i * CHUNK : min(n, (i + 1) * CHUNK)]
            payload.seal(piece, sealed[out : out + len(piece) + TAG], eof and i == chunks - 1)
            out += len(piece) + TAG
        _write_all(dst, sealed[:out], after_write)
        if eof:
            return
        plain[:CHUNK] = plain[(BATCH - 1) * CHUNK :]
        held = CHUNK


def decrypt(src: Readable, dst: int, payload: Payload) -> None:
    """Decrypt the chunks of `src` (after `open_payload`) to the file descriptor
    `dst`. Each batch is written once authenticated; the caller must treat
    what it received as untrusted until this returns."""
    for batch in _plain_batches(src, payload):
        _write_all(dst, batch, None)


def decrypt_bytes(data: bytes, identity: X25519PrivateKey) -> bytes:
    """A small age file (a sealed session key) decrypted in memory; AgeError
    if it is not one or `identity` cannot open it."""
    src = io.BufferedReader(io.BytesIO(data))
    payload = open_payload(src, identity)
    return b"".join(bytes(batch) for batch in _plain_batches(src, payload))


def _plain_batches(src: Readable, payload: Payload) -> Iterator[memoryview]:
    """The authenticated plaintext of `src`, a batch of chunks at a time (each
    view is valid until the next one is asked for)."""
    sealed, plain = memoryview(bytearray(BATCH * SEALED)), memoryview(bytearray(BATCH * CHUNK))
    held = 0
    while True:
        n = held + _read_full(src, sealed[held:])
        eof = n < len(sealed)
        pieces = -(-n // SEALED) if eof else BATCH - 1
        if pieces == 0:
            raise AgeError("truncated file: it ends before its first chunk")
        out = 0
        for i in range(pieces):
            piece = sealed[i * SEALED : min(n, (i + 1) * SEALED)]
            _open_chunk(
                payload, piece, plain[out : out + len(piece) - TAG], eof and i == pieces - 1
            )
            out += len(piece) - TAG
        yield plain[:out]
        if eof:
            return
        sealed[:SEALED] = sealed[(BATCH - 1) * SEALED :]
        held = SEALED


def _open_chunk(payload: Payload, piece: memoryview, out: memoryview, last: bool) -> None:
    """Authenticate and decrypt one chunk, or say precisely why not."""
    index = payload.counter
    if len(piece) < TAG:
        raise AgeError("truncated file: its last chunk is cut short")
    if last and len(piece) == TAG and index > 0:
        raise AgeError("malformed file: an empty last chunk after a full one")
    if payload.open(piece, out, last):
        return
    if last and len(piece) == SEALED and payload.open(piece, out, False):
        raise AgeError("truncated file: it ends at a chunk boundary before its last chunk")
    if not last and payload.open(piece, out, True):
        raise AgeError("trailing data after the last chunk")
    raise AgeError(f"chunk {index} fails authentication (tampered or truncated file)")


def check_first_chunk(src: Readable, payload: Payload) -> None:
    """Authenticate the first chunk only: a cheap proof that the key opens the
    file (the header MAC already proved the file key)."""
    sealed = memoryview(bytearray(SEALED + 1))
    n = _read_full(src, sealed)
    if n == 0:
        raise AgeError("truncated file: it ends before its first chunk")
    last = n <= SEALED
    piece = sealed[: min(n, SEALED)]
    _open_chunk(payload, piece, memoryview(bytearray(len(piece) - TAG if n >= TAG else 0)), last)
