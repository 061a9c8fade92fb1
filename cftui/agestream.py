"""The age v1 file format for X25519 recipients, on `cryptography`: cftui's
one age implementation (bot identities, the sealed capture session keys, and
snapshot streams).

Written from the spec (C2SP age.md) because pyrage's payload cipher runs at
half the speed of the stock `age` CLI here, while OpenSSL's ChaCha20-Poly1305
(behind `cryptography`) is SIMD-accelerated: the snapshot pipeline was bound
by the encryptor. Only what cftui needs: encrypt to one `age1...` recipient,
decrypt with one `AGE-SECRET-KEY-1...` identity (other stanzas are skipped),
binary files only (no armor). Memory is a pair of fixed buffers of `BATCH`
chunks: plaintext and ciphertext move through them with `readinto` and one
write per batch.

Run as a child process by `cftui.snapshots` (the identity arrives on stdin,
never in argv or the environment):
    python -I -m cftui.agestream encrypt age1...   < plain > file.age
    python -I -m cftui.agestream decrypt FILE      < identity-line > plain
Exit status 2 with one line on stderr on failure ("age: ..." for format and
key errors), 3 when the reader of stdout went away.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import hmac
import io
import os
import sys
from collections.abc import Callable, Iterator
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION_LINE = b"age-encryption.org/v1"
X25519_INFO = b"age-encryption.org/v1/X25519"
RECIPIENT_HRP = "age"
IDENTITY_HRP = "age-secret-key-"
CHUNK = 64 * 1024
TAG = 16
SEALED = CHUNK + TAG
BATCH = 16  # chunks per read and per write: 1 MiB, the size of the widened pipes
MAX_HEADER = 64 * 1024  # far above one stanza; a bound on what a hostile file makes us buffer
_LAST = b"\x01"
_NOT_LAST = b"\x00"


class Readable(Protocol):
    def readinto(self, buf: memoryview, /) -> int | None: ...


AfterWrite = Callable[[int], None] | None


class AgeError(Exception):
    """A key or file the age format refuses; the message is one line."""


class WrongKeyError(AgeError):
    """The file is sealed to recipients this identity is not one of."""


class NotAgeFileError(AgeError):
    """The file does not start with an age v1 header (or it is cut short)."""


# --- bech32 (BIP-173), for the key strings ----------------------------------

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GEN[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _regroup(data: list[int], src: int, dst: int, pad: bool) -> list[int] | None:
    acc = bits = 0
    out = []
    for v in data:
        acc = (acc << src) | v
        bits += src
        while bits >= dst:
            bits -= dst
            out.append((acc >> bits) & ((1 << dst) - 1))
    if pad and bits:
        out.append((acc << (dst - bits)) & ((1 << dst) - 1))
    elif not pad and (bits >= src or (acc << (dst - bits)) & ((1 << dst) - 1)):
        return None  # leftover bits must be fewer than a group, and zero
    return out


def bech32_decode(text: str, hrp: str) -> bytes:
    """The bytes of a bech32 string with human-readable part `hrp` (either
    all lower or all upper case, checksum verified)."""
    if text.lower() != text and text.upper() != text:
        raise AgeError("mixed case in a bech32 key")
    text = text.lower()
    sep = text.rfind("1")
    if sep < 1 or sep + 7 > len(text) or any(not 33 <= ord(c) <= 126 for c in text):
        raise AgeError("malformed bech32 key")
    if text[:sep] != hrp:
        raise AgeError(f"not a key of type {hrp!r}")
    try:
        data = [_CHARSET.index(c) for c in text[sep + 1 :]]
    except ValueError:
        raise AgeError("invalid character in a bech32 key") from None
    if _polymod(_hrp_expand(hrp) + data) != 1:
        raise AgeError("bad bech32 checksum (a mistyped key?)")
    raw = _regroup(data[:-6], 5, 8, pad=False)
    if raw is None:
        raise AgeError("malformed bech32 key")
    return bytes(raw)


def bech32_encode(hrp: str, raw: bytes) -> str:
    data = _regroup(list(raw), 8, 5, pad=True) or []
    check = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ 1
    data += [(check >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data)


# --- keys --------------------------------------------------------------------


def parse_recipient(text: str) -> bytes:
    """The 32-byte X25519 public key of an `age1...` recipient."""
    raw = bech32_decode(text.strip(), RECIPIENT_HRP)
    if len(raw) != 32:
        raise AgeError("an age X25519 recipient holds 32 bytes")
    return raw


def parse_identity(text: str) -> X25519PrivateKey:
    """The private key of an `AGE-SECRET-KEY-1...` identity."""
    raw = bech32_decode(text.strip(), IDENTITY_HRP)
    if len(raw) != 32:
        raise AgeError("an age X25519 identity holds 32 bytes")
    return X25519PrivateKey.from_private_bytes(raw)


def recipient_of(identity: X25519PrivateKey) -> str:
    """The `age1...` recipient of an identity."""
    return bech32_encode(RECIPIENT_HRP, identity.public_key().public_bytes_raw())


def identity_text(identity: X25519PrivateKey) -> str:
    """The `AGE-SECRET-KEY-1...` form of an identity, as age-keygen writes it."""
    return bech32_encode(IDENTITY_HRP, identity.private_bytes_raw()).upper()


def generate_identity() -> X25519PrivateKey:
    """A new X25519 identity (the private key of a bot's snapshots and captures)."""
    return X25519PrivateKey.generate()


# --- header --------------------------------------------------------------------


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt, info).derive(ikm)


def _b64(raw: bytes) -> bytes:
    return base64.b64encode(raw).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    """Canonical unpadded base64, as the spec requires (no '=', no stray bits)."""
    if b"=" in text or len(text) % 4 == 1:
        raise AgeError("malformed base64 in the header")
    try:
        raw = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise AgeError("malformed base64 in the header") from None
    if _b64(raw) != text:
        raise AgeError("non-canonical base64 in the header")
    return raw


def _shared(secret: X25519PrivateKey, public: bytes) -> bytes:
    try:
        shared = secret.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:  # cryptography refuses an all-zero result itself
        raise AgeError("low-order X25519 share") from None
    if not any(shared):  # the spec's check, whatever the library does
        raise AgeError("low-order X25519 share")
    return shared


def _header(file_key: bytes, recipient: bytes) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    wrap_key = _hkdf(_shared(ephemeral, recipient), share + recipient, X25519_INFO)
    body = ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None)
    head = b"%s\n-> X25519 %s\n%s\n---" % (VERSION_LINE, _b64(share), _b64(body))
    mac = hmac.digest(_hkdf(file_key, b"", b"header"), head, hashlib.sha256)
    return head + b" " + _b64(mac) + b"\n"


def _read_line(src: io.BufferedReader, seen: int) -> bytes:
    line = src.readline(MAX_HEADER - seen + 1)
    if not line.endswith(b"\n"):
        if len(line) > MAX_HEADER - seen:
            raise AgeError("header too long")
        raise NotAgeFileError("truncated header (not an age file?)")
    return line


def _read_stanzas(src: io.BufferedReader) -> tuple[list[tuple[list[bytes], bytes]], bytes, bytes]:
    """Parse the header: its stanzas (arguments, body), the bytes the MAC covers
    and the MAC."""
    first = _read_line(src, 0)
    if first.rstrip(b"\n") != VERSION_LINE:
        if first.startswith(b"-----BEGIN AGE ENCRYPTED FILE"):
            raise AgeError("armored age files are not supported")
        raise NotAgeFileError("not an age v1 file")
    covered = [first]
    seen = len(first)
    stanzas: list[tuple[list[bytes], bytes]] = []
    while True:
        line = _read_line(src, seen)
        seen += len(line)
        if line.startswith(b"--- "):
            covered.append(b"---")
            mac = _unb64(line[4:-1])
            if len(mac) != 32:
                raise AgeError("malformed header MAC")
            return stanzas, b"".join(covered), mac
        if not line.startswith(b"-> "):
            raise AgeError("malformed header line")
        args = line[3:-1].split(b" ")
        if not all(args) or any(not 33 <= c <= 126 for a in args for c in a):
            raise AgeError("malformed stanza arguments")
        covered.append(line)
        body = []
        while True:  # body lines of 64 columns; the last one is shorter, maybe empty
            part = _read_line(src, seen)
            seen += len(part)
            covered.append(part)
            if len(part) > 65:
                raise AgeError("malformed stanza body")
            body.append(part[:-1])
            if len(part) < 65:
                break
        stanzas.append((args, _unb64(b"".join(body))))


def _unwrap(stanzas: list[tuple[list[bytes], bytes]], identity: X25519PrivateKey) -> bytes:
    ours = identity.public_key().public_bytes_raw()
    for args, body in stanzas:
        if args[0] != b"X25519":
            continue
        if len(args) != 2 or len(body) != 32:
            raise AgeError("malformed X25519 stanza")
        share = _unb64(args[1])
        if len(share) != 32:
            raise AgeError("malformed X25519 stanza")
        wrap_key = _hkdf(_shared(identity, share), share + ours, X25519_INFO)
        try:
            return ChaCha20Poly1305(wrap_key).decrypt(bytes(12), body, None)
        except InvalidTag:
            continue
    raise WrongKeyError("no identity matched any of the recipients (wrong key)")


class Payload:
    """The STREAM cipher of one file: 64 KiB chunks, each sealed under a nonce
    of an 11-byte big-endian counter and a last-chunk flag."""

    def __init__(self, file_key: bytes, nonce: bytes) -> None:
        self.aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
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


def open_payload(src: io.BufferedReader, identity: X25519PrivateKey) -> Payload:
    """Read and authenticate the header of `src`, leaving it at the first chunk."""
    stanzas, covered, mac = _read_stanzas(src)
    file_key = _unwrap(stanzas, identity)
    expected = hmac.digest(_hkdf(file_key, b"", b"header"), covered, hashlib.sha256)
    if not hmac.compare_digest(expected, mac):
        raise AgeError("header MAC mismatch (tampered header)")
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
    _write_all(dst, _header(file_key, recipient) + nonce, after_write)
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


# --- the child process -------------------------------------------------------


def _fail(message: str) -> int:
    sys.stderr.write(" ".join(message.split())[:300])
    return 2


def main(argv: list[str]) -> int:
    """`encrypt [--write-behind] RECIPIENT` (stdin to stdout) or `decrypt FILE`
    (identity on the first line of stdin, plaintext to stdout)."""
    try:
        if argv[:1] == ["encrypt"] and len(argv) in (2, 3):
            recipient = parse_recipient(argv[-1])
            after_write = None
            if "--write-behind" in argv[1:-1]:
                from cftui.writebehind import WriteBehind

                after_write = WriteBehind(1).written
            encrypt(io.FileIO(0, closefd=False), 1, recipient, after_write)
        elif argv[:1] == ["decrypt"] and len(argv) == 2:
            identity = parse_identity(sys.stdin.readline())
            sys.stdin.close()
            with open(argv[1], "rb", buffering=SEALED) as src:
                decrypt(src, 1, open_payload(src, identity))
        else:
            return _fail("usage: agestream encrypt [--write-behind] RECIPIENT | decrypt FILE")
    except AgeError as exc:
        return _fail(f"age: {exc}")
    except BrokenPipeError:
        return 3
    except OSError as exc:
        return _fail("disk full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc))
    except Exception as exc:  # still one line for the parent, never a traceback
        return _fail(f"age: {type(exc).__name__}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
