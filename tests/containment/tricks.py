"""The escape suite's requests, as bytes a gateway sends: shared by the
Docker suite (test_escapes.py) and the Lima one (tests/lima/test_escapes.py)."""

from __future__ import annotations

import ipaddress


def ip_spellings(ip: str) -> dict[str, str]:
    """The same IPv4 address as URL hosts a resolver or a parser may accept."""
    a, b, c, d = (int(x) for x in ip.split("."))
    n = int(ipaddress.IPv4Address(ip))
    return {
        "dotted": ip,
        "decimal": str(n),
        "hex": hex(n),
        "octal_dotted": ".".join(f"0{x:o}" for x in (a, b, c, d)),
        "hex_dotted": ".".join(hex(x) for x in (a, b, c, d)),
        "mixed": f"0x{a:x}.{b}.0{c:o}.{d}",
        "three_part": f"{a}.{b}.{(c << 8) | d}",
        "two_part": f"{a}.{(b << 16) | (c << 8) | d}",
        "zero_padded": ".".join(f"{x:04d}" for x in (a, b, c, d)),
        "trailing_dot": f"{ip}.",
        "v4_mapped": f"[::ffff:{ip}]",
        "v4_mapped_hex": f"[::ffff:{(a << 8) | b:x}:{(c << 8) | d:x}]",
        "v4_compatible": f"[::{ip}]",
        "nat64": f"[64:ff9b::{ip}]",
        "percent_encoded": "".join(f"%{ord(ch):02x}" for ch in ip),
    }


def get(url: str, host: str) -> str:
    return f"GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"


def post(path: str, body: str, headers: str, host: str = "llm-proxy") -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/json\r\n"
        f"{headers}content-length: {len(body.encode())}\r\nConnection: close\r\n\r\n{body}"
    )
