"""The age v1 header: one X25519 stanza written, stanzas read and unwrapped
with an identity, the header MAC checked. The header is bounded
(`MAX_HEADER`) because the file may be hostile: a snapshot the agent could
have planted, a sealed key read back from disk."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cftui.age.errors import AgeError, NotAgeFileError, WrongKeyError

VERSION_LINE = b"age-encryption.org/v1"
X25519_INFO = b"age-encryption.org/v1/X25519"
MAX_HEADER = 64 * 1024  # far above one stanza; a bound on what a hostile file makes us buffer


class LineReader(Protocol):
    """What the header is read from: a buffered binary file."""

    def readline(self, size: int = -1, /) -> bytes: ...


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA-256 to a 32-byte key, as the spec derives every key."""
    return HKDF(hashes.SHA256(), 32, salt, info).derive(ikm)


def b64(raw: bytes) -> bytes:
    """Unpadded base64, the header's encoding."""
    return base64.b64encode(raw).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    """Canonical unpadded base64, as the spec requires (no '=', no stray bits)."""
    if b"=" in text or len(text) % 4 == 1:
        raise AgeError("malformed base64 in the header")
    try:
        raw = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise AgeError("malformed base64 in the header") from None
    if b64(raw) != text:
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


def header_bytes(file_key: bytes, recipient: bytes) -> bytes:
    """The header sealing `file_key` to one X25519 recipient (raw 32 bytes)."""
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    wrap_key = hkdf(_shared(ephemeral, recipient), share + recipient, X25519_INFO)
    body = ChaCha20Poly1305(wrap_key).encrypt(bytes(12), file_key, None)
    head = b"%s\n-> X25519 %s\n%s\n---" % (VERSION_LINE, b64(share), b64(body))
    mac = hmac.digest(hkdf(file_key, b"", b"header"), head, hashlib.sha256)
    return head + b" " + b64(mac) + b"\n"


def _read_line(src: LineReader, seen: int) -> bytes:
    line = src.readline(MAX_HEADER - seen + 1)
    if not line.endswith(b"\n"):
        if len(line) > MAX_HEADER - seen:
            raise AgeError("header too long")
        raise NotAgeFileError("truncated header (not an age file?)")
    return line


def _read_stanzas(src: LineReader) -> tuple[list[tuple[list[bytes], bytes]], bytes, bytes]:
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
        wrap_key = hkdf(_shared(identity, share), share + ours, X25519_INFO)
        try:
            return ChaCha20Poly1305(wrap_key).decrypt(bytes(12), body, None)
        except InvalidTag:
            continue
    raise WrongKeyError("no identity matched any of the recipients (wrong key)")


def read_file_key(src: LineReader, identity: X25519PrivateKey) -> bytes:
    """Read and authenticate the header of `src` and return its file key,
    leaving `src` at the payload nonce."""
    stanzas, covered, mac = _read_stanzas(src)
    file_key = _unwrap(stanzas, identity)
    expected = hmac.digest(hkdf(file_key, b"", b"header"), covered, hashlib.sha256)
    if not hmac.compare_digest(expected, mac):
        raise AgeError("header MAC mismatch (tampered header)")
    return file_key
