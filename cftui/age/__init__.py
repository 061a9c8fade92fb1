"""The age v1 file format for X25519 recipients, on `cryptography`: cftui's
one age implementation (bot identities, the sealed capture session keys, and
snapshot streams), readable and writable by the stock `age` tool.

Written from the spec (C2SP age.md) because pyrage's payload cipher runs at
half the speed of the stock `age` CLI here, while OpenSSL's ChaCha20-Poly1305
(behind `cryptography`) is SIMD-accelerated: the snapshot pipeline was bound
by the encryptor. Only what cftui needs: encrypt to one `age1...` recipient,
decrypt with one `AGE-SECRET-KEY-1...` identity (other stanzas are skipped),
binary files only (no armor).

- `keys`: recipients and identities as strings (bech32);
- `header`: the header written, read (bounded: files may be hostile) and
  unwrapped with an identity;
- `stream`: the chunked payload, streamed or in memory;
- `child` (`python -m cftui.age`): both directions as a child process.

This package exports what its callers use; `header` keeps the rest.
"""

from cftui.age.errors import AgeError, NotAgeFileError, WrongKeyError
from cftui.age.keys import (
    bech32_decode,
    bech32_encode,
    generate_identity,
    identity_text,
    parse_identity,
    parse_recipient,
    recipient_of,
)
from cftui.age.stream import (
    BATCH,
    CHUNK,
    SEALED,
    TAG,
    Payload,
    check_first_chunk,
    decrypt,
    decrypt_bytes,
    encrypt,
    open_payload,
)

__all__ = [
    "BATCH",
    "CHUNK",
    "SEALED",
    "TAG",
    "AgeError",
    "NotAgeFileError",
    "Payload",
    "WrongKeyError",
    "bech32_decode",
    "bech32_encode",
    "check_first_chunk",
    "decrypt",
    "decrypt_bytes",
    "encrypt",
    "generate_identity",
    "identity_text",
    "open_payload",
    "parse_identity",
    "parse_recipient",
    "recipient_of",
]
