"""cftui.age: the age format on `cryptography`, checked against the stock
`age` CLI both ways, byte-exact at the chunk and batch boundaries, and refusing
wrong keys, tampering, truncation and trailing data with one-line errors."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyrage import x25519

from cftui import age
from cftui.age import CHUNK, SEALED, AgeError, header

from .conftest import require_age

SIZES = [
    0,
    1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    2 * CHUNK,
    (age.BATCH - 1) * CHUNK,
    age.BATCH * CHUNK,
    age.BATCH * CHUNK + 1,
    2 * age.BATCH * CHUNK - CHUNK,
    3 * age.BATCH * CHUNK + 12345,
]


@pytest.fixture
def keys(tmp_path: Path) -> tuple[str, str, Path]:
    """(identity, recipient, key file in age-keygen's format), made by pyrage."""
    identity = x25519.Identity.generate()
    key = tmp_path / "key.txt"
    key.write_text(f"# public key: {identity.to_public()}\n{identity}\n")
    return str(identity), str(identity.to_public()), key


def encrypt(plain: bytes, recipient: str, dest: Path) -> bytes:
    with dest.open("wb") as out:
        age.encrypt(io.BytesIO(plain), out.fileno(), age.parse_recipient(recipient))
    return dest.read_bytes()


def decrypt(path: Path, identity: str, dest: Path) -> bytes:
    with path.open("rb") as src, dest.open("wb") as out:
        payload = age.open_payload(src, age.parse_identity(identity))
        age.decrypt(src, out.fileno(), payload)
    return dest.read_bytes()


def refused(path: Path, identity: str, tmp_path: Path, match: str) -> None:
    with pytest.raises(AgeError, match=match) as info:
        decrypt(path, identity, tmp_path / "plain.out")
    assert "\n" not in str(info.value)


def test_keys_match_pyrage_and_bech32_checksums_are_checked(keys) -> None:
    identity, recipient, _key = keys
    secret = age.parse_identity(identity)
    assert age.recipient_of(secret) == recipient
    assert len(age.parse_recipient(recipient)) == 32
    assert age.parse_identity(identity.lower()).private_bytes_raw()
    flipped = recipient[:-1] + ("q" if recipient[-1] != "q" else "p")
    with pytest.raises(AgeError, match="checksum"):
        age.parse_recipient(flipped)
    with pytest.raises(AgeError, match="mixed case"):
        age.parse_identity(identity[:20] + identity[20:].lower())
    with pytest.raises(AgeError, match="type 'age'"):
        age.parse_recipient(identity)
    with pytest.raises(AgeError, match="malformed"):
        age.parse_recipient("age1")


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_and_the_age_cli_reads_ours(keys, tmp_path: Path, size: int) -> None:
    require_age()
    identity, recipient, key = keys
    plain = os.urandom(size)
    sealed = encrypt(plain, recipient, tmp_path / "f.age")
    chunks = max(1, -(-size // CHUNK))
    assert len(sealed) > size + 16 * chunks  # header + nonce + one tag a chunk
    assert decrypt(tmp_path / "f.age", identity, tmp_path / "out") == plain
    cli = subprocess.run(
        ["age", "-d", "-i", str(key), str(tmp_path / "f.age")], capture_output=True
    )
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout == plain


@pytest.mark.parametrize("size", [0, CHUNK, age.BATCH * CHUNK, 3 * CHUNK + 7])
def test_we_read_the_age_cli(keys, tmp_path: Path, size: int) -> None:
    require_age()
    identity, recipient, _key = keys
    plain = os.urandom(size)
    made = tmp_path / "cli.age"
    subprocess.run(["age", "-r", recipient, "-o", str(made)], input=plain, check=True)
    assert decrypt(made, identity, tmp_path / "out") == plain


def test_the_child_process_pipes_both_ways(keys, tmp_path: Path) -> None:
    identity, recipient, _key = keys
    plain = os.urandom(5 * CHUNK + 3)
    run = [sys.executable, "-I", "-m", "cftui.age"]
    enc = subprocess.run([*run, "encrypt", recipient], input=plain, capture_output=True)
    assert enc.returncode == 0, enc.stderr
    (tmp_path / "f.age").write_bytes(enc.stdout)
    dec = subprocess.run(
        [*run, "decrypt", str(tmp_path / "f.age")],
        input=f"{identity}\n".encode(),
        capture_output=True,
    )
    assert dec.returncode == 0 and dec.stdout == plain
    (tmp_path / "bad.age").write_bytes(enc.stdout[:-1])
    bad = subprocess.run(
        [*run, "decrypt", str(tmp_path / "bad.age")],
        input=f"{identity}\n".encode(),
        capture_output=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.decode().startswith("age: ") and b"\n" not in bad.stderr


def test_a_wrong_identity_is_refused(keys, tmp_path: Path) -> None:
    _identity, recipient, _key = keys
    encrypt(b"secret", recipient, tmp_path / "f.age")
    other = str(x25519.Identity.generate())
    refused(tmp_path / "f.age", other, tmp_path, "wrong key")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda h: h.replace(b"-> X25519 ", b"-> X25519 x"), "malformed X25519"),
        (lambda h: h.replace(b"\n---", b"\n-> extra\n\n---"), "MAC mismatch"),
        (lambda h: h[:-5] + (b"A" if h[-5:-4] != b"A" else b"B") + h[-4:], "MAC mismatch"),
        (lambda h: h.replace(b"age-encryption.org/v1", b"age-encryption.org/v2"), "not an age"),
        (lambda h: h.replace(b"--- ", b"---"), "malformed header line"),
    ],
    ids=["share", "stanza added", "mac", "version", "mac line"],
)
def test_a_tampered_header_is_refused(keys, tmp_path: Path, edit, match: str) -> None:
    identity, recipient, _key = keys
    data = encrypt(os.urandom(1000), recipient, tmp_path / "f.age")
    end = data.index(b"\n", data.index(b"\n---") + 1) + 1
    (tmp_path / "bad.age").write_bytes(edit(data[:end]) + data[end:])
    refused(tmp_path / "bad.age", identity, tmp_path, match)


def crafted(recipient: str, chunks: list[tuple[bytes, bool]]) -> bytes:
    """A file whose chunks carry the given last-chunk flags."""
    file_key, nonce = os.urandom(16), os.urandom(16)
    out = header.header_bytes(file_key, age.parse_recipient(recipient)) + nonce
    payload = age.Payload(file_key, nonce)
    for plain, last in chunks:
        sealed = bytearray(len(plain) + 16)
        payload.seal(memoryview(plain), memoryview(sealed), last)
        out += bytes(sealed)
    return out


def test_a_crafted_file_with_the_right_flags_is_read(keys, tmp_path: Path) -> None:
    identity, recipient, _key = keys
    parts = [os.urandom(CHUNK), os.urandom(CHUNK), b"tail"]
    (tmp_path / "f.age").write_bytes(
        crafted(recipient, [(parts[0], False), (parts[1], False), (parts[2], True)])
    )
    assert decrypt(tmp_path / "f.age", identity, tmp_path / "out") == b"".join(parts)


def test_payload_damage_is_refused(keys, tmp_path: Path) -> None:
    identity, recipient, _key = keys
    data = encrypt(os.urandom(3 * CHUNK + 100), recipient, tmp_path / "f.age")
    start = len(data) - (3 * SEALED + 100 + 16)  # the first chunk
    bad = tmp_path / "bad.age"
    cases = [
        (data[: start + SEALED + 40] + b"\x00" + data[start + SEALED + 41 :], "chunk 1 fails"),
        (data[: start + 2 * SEALED], "ends at a chunk boundary"),
        (data[: start + 2 * SEALED + 7], "cut short"),
        (data[:-1], "chunk 3 fails"),
        (data + b"garbage", "chunk 3 fails"),
        (data[:start], "no payload|before its first chunk"),
        (data[: start - 3], "ends before its payload"),
    ]
    for content, match in cases:
        bad.write_bytes(content)
        refused(bad, identity, tmp_path, match)


def test_flags_anywhere_but_at_the_end_are_refused(keys, tmp_path: Path) -> None:
    identity, recipient, _key = keys
    full = os.urandom(CHUNK)
    bad = tmp_path / "bad.age"
    cases = [
        ([(full, True), (b"more", True)], "trailing data"),
        ([(full, False), (b"", True)], "empty last chunk"),
        ([(full, False), (full, False)], "ends at a chunk boundary"),
        ([(b"short", False)], "chunk 0 fails"),
    ]
    for chunks, match in cases:
        bad.write_bytes(crafted(recipient, chunks))
        refused(bad, identity, tmp_path, match)
    # A full last chunk followed by anything at all is trailing data.
    bad.write_bytes(crafted(recipient, [(full, True)]) + b"x")
    refused(bad, identity, tmp_path, "trailing data")


def test_check_first_chunk_reads_only_the_start(keys, tmp_path: Path) -> None:
    identity, recipient, _key = keys
    data = encrypt(os.urandom(4 * CHUNK), recipient, tmp_path / "f.age")
    (tmp_path / "cut.age").write_bytes(data[: len(data) // 2])  # the end is not looked at
    with (tmp_path / "cut.age").open("rb") as src:
        age.check_first_chunk(src, age.open_payload(src, age.parse_identity(identity)))
    other = age.parse_identity(str(x25519.Identity.generate()))
    with (tmp_path / "cut.age").open("rb") as src, pytest.raises(AgeError, match="wrong key"):
        age.open_payload(src, other)


def test_a_low_order_share_is_refused(keys, tmp_path: Path) -> None:
    identity, recipient, _key = keys
    data = encrypt(b"x", recipient, tmp_path / "f.age")
    line = data.split(b"\n")[1]
    zero_share = b"-> X25519 " + header.b64(bytes(32))
    (tmp_path / "bad.age").write_bytes(data.replace(line, zero_share))
    refused(tmp_path / "bad.age", identity, tmp_path, "low-order")
