"""The tar fast path, the egress allowlist patterns and the age header on
hostile input (issue 15, fuzzing).

- tar: a snapshot holds what the agent put in `state/`. The fast header
  parser must read every 512-byte block exactly as tarfile does, member or
  error (a differential property over valid headers with mutated fields).
- patterns: parsing any text gives a pattern or a PatternError; checking
  any host never raises; and every spelling the resolver reads as an IPv4
  address (inet_aton: `127.1`, `0x7f.1`, `017700000001`) is treated as that
  address, so no name pattern can admit it.
- age: any bytes as a snapshot or capture key give an AgeError, nothing else;
  a valid file with any byte flipped or cut is refused the same way.
"""

from __future__ import annotations

import io
import socket
import tarfile

import pytest
from cfproxies.egress.patterns import (
    Allowlist,
    PatternError,
    ip_literal,
    normalise_patterns,
    parse_pattern,
)
from hypothesis import assume, given
from hypothesis import strategies as st

from cftui import age
from cftui.snapshots.tarheader import FastTarInfo

from .strategies import FUZZ

# --- tar -------------------------------------------------------------------------

FIELDS = {  # offset, length of the fields the fast path decodes
    "name": (0, 100),
    "mode": (100, 8),
    "uid": (108, 8),
    "gid": (116, 8),
    "size": (124, 12),
    "mtime": (136, 12),
    "type": (156, 1),
    "linkname": (157, 100),
    "uname": (265, 32),
    "gname": (297, 32),
    "devmajor": (329, 8),
    "devminor": (337, 8),
    "prefix": (345, 155),
}
field_bytes = st.binary(max_size=12) | st.sampled_from(
    [b"0" * 7 + b"\0", b"-7\0", b"0o17\0", b" 1_0 \0", b"\x80" + b"\0" * 6 + b"\1", b"7" * 12]
)


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    info = tarfile.TarInfo(draw(st.text(max_size=40)) or "x")
    info.type = draw(st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE]))
    info.linkname = draw(st.text(max_size=20)) if info.type == tarfile.SYMTYPE else ""
    info.size = draw(st.integers(0, 2**33 - 1)) if info.type == tarfile.REGTYPE else 0
    fmt = draw(st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT]))
    try:
        block = bytearray(info.tobuf(fmt, "utf-8", "surrogateescape")[:512])
    except (ValueError, UnicodeEncodeError):
        assume(False)
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=3)):
        offset, length = FIELDS[name]
        value = draw(field_bytes)[:length]
        block[offset : offset + len(value)] = value
    if draw(st.booleans()):  # keep the checksum valid, so the fast path is taken
        block[148:156] = b" " * 8
        block[148:155] = b"%06o\0" % sum(block)
    return bytes(block)


def _read(cls: type[tarfile.TarInfo], block: bytes) -> object:
    try:
        got = cls.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError as exc:
        return type(exc)
    return {k: getattr(got, k) for k in FIELDS if k != "prefix"} | {"chksum": got.chksum}


@FUZZ
@given(block=header_blocks() | st.binary(min_size=512, max_size=512))
def test_fast_tar_header_reads_every_block_as_tarfile_does(block: bytes) -> None:
    assert _read(FastTarInfo, block) == _read(tarfile.TarInfo, block)


# --- egress patterns ----------------------------------------------------------------

pattern_text = st.lists(
    st.sampled_from([*"ab.-*:[]/0123456789xf%_ ", "::", "ffff", "example", "com"]), max_size=12
).map("".join) | st.text(max_size=24)


@FUZZ
@given(text=pattern_text, host=pattern_text, port=st.none() | st.integers(-1, 70000))
def test_patterns_parse_or_refuse_and_checks_never_raise(text: str, host: str, port) -> None:
    try:
        pattern = parse_pattern(text)
    except PatternError:
        return
    allow = Allowlist.parse([pattern.text])
    assert normalise_patterns(allow.texts) == allow.texts  # idempotent
    allow.check(host, port)
    allow.check(pattern.text, port)


rule_text = st.lists(
    st.sampled_from(
        [
            "a.example",
            "*.b.example",
            "10.0.0.0/8",
            " ",
            "GET",
            "get,HEAD",
            "*",
            "POST",
            "/",
            "/a/",
            "/a",
            "..",
            ".",
            "%2e",
            "%2F",
            "%7e",
            "%",
            "\\",
            ";",
            "?",
            "x",
            "\udcff",
            "\t",
        ]
    ),
    max_size=10,
).map("".join)
request_path = st.lists(
    st.sampled_from(
        ["/", "a", "..", ".", "%2e", "%2E", "%2f", "%7E", "%", ";", "\\", "?q", "\udcff"]
    ),
    max_size=10,
).map("".join)


@FUZZ
@given(
    text=rule_text,
    host=st.sampled_from(["a.example", "x.b.example", "10.1.2.3", "c.example"]),
    method=st.sampled_from(["GET", "get", "POST", "BREW"]),
    path=request_path,
)
def test_rules_parse_or_refuse_and_a_suggestion_admits_what_was_refused(
    text: str, host: str, method: str, path: str
) -> None:
    try:
        entry = parse_pattern(text)
    except PatternError:
        return
    assert normalise_patterns([entry.text]) == [entry.text]  # the canonical form is a fixed point
    allow = Allowlist.parse([entry.text])
    d = allow.check_request(host, 443, method, path)
    if not d.allowed and d.suggest is not None:
        grown = Allowlist.parse([entry.text, d.suggest])
        assert grown.check_request(host, 443, method, path).allowed


_NUMERIC = st.text(st.sampled_from(list("0123456789.xXabcdefABCDEF")), min_size=1, max_size=20)


@FUZZ
@given(host=_NUMERIC | st.integers(0, 2**32 - 1).map(str) | st.integers(0, 2**32 - 1).map(hex))
def test_what_the_resolver_reads_as_an_address_is_an_address_here(host: str) -> None:
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return
    address = socket.inet_ntoa(packed)
    assert ip_literal(host) == address, host
    # ... so no name pattern admits it, and its own address does.
    assert (
        not Allowlist.parse(["*.example.com", "example.com", "*.0.1", "*.1.1"])
        .check(host, 80)
        .allowed
    )
    assert Allowlist.parse([address]).check(host, 80).allowed


# --- age -----------------------------------------------------------------------------

IDENTITY = age.generate_identity()
RECIPIENT = age.parse_recipient(age.recipient_of(IDENTITY))


def _encrypted(plain: bytes) -> bytes:
    import tempfile

    with tempfile.TemporaryFile() as out:
        age.encrypt(io.BytesIO(plain), out.fileno(), RECIPIENT)
        out.seek(0)
        return out.read()


VALID = _encrypted(b"state/memory/notes.md" * 10)
head_prefix = st.sampled_from(
    [b"", b"age-encryption.org/v1\n", b"age-encryption.org/v1\n-> X25519 ", VALID[:120]]
)


@FUZZ
@given(prefix=head_prefix, tail=st.binary(max_size=300))
def test_any_bytes_as_an_age_file_are_an_age_error(prefix: bytes, tail: bytes) -> None:
    with pytest.raises(age.AgeError):
        age.decrypt_bytes(prefix + tail, IDENTITY)


@FUZZ
@given(at=st.integers(0, len(VALID) - 1), flip=st.integers(1, 255), cut=st.booleans())
def test_a_valid_file_flipped_or_cut_anywhere_is_refused(at: int, flip: int, cut: bool) -> None:
    damaged = VALID[:at] if cut else VALID[:at] + bytes([VALID[at] ^ flip]) + VALID[at + 1 :]
    with pytest.raises(age.AgeError):
        age.decrypt_bytes(damaged, IDENTITY)


def test_the_valid_file_itself_decrypts() -> None:
    assert age.decrypt_bytes(VALID, IDENTITY) == b"state/memory/notes.md" * 10
