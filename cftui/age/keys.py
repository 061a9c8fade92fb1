"""age X25519 keys as strings: `age1...` recipients and `AGE-SECRET-KEY-1...`
identities, in bech32 (BIP-173) as age-keygen writes them."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cftui.age.errors import AgeError

RECIPIENT_HRP = "age"
IDENTITY_HRP = "age-secret-key-"

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
