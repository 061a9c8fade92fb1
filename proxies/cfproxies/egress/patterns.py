"""Egress allowlist patterns: which hosts a bot may reach.

Standard library only, so `cftui` validates what the operator types with the
very code the proxy matches with. A pattern is one of

- `host.example.com` (that host exactly), `*.example.com` (its subdomains,
  not the domain itself),
- an IP literal (`192.0.2.7`, `2001:db8::1`, `[2001:db8::1]`) or a network
  (`10.1.0.0/16`),

each optionally followed by `:PORT`; without a port every port matches. IP
literals never match a name pattern, so an address (private or not) is
reachable only when it is listed. A host reached by name must also
resolve to a public address, or to one that is itself listed: neither
`*.example.com` nor `api.example.com` opens the way to an internal service
whose DNS record points inside (DNS rebinding).
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from dataclasses import dataclass

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_NAME_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_PORT_RE = re.compile(r"^(.*?)(?::(\d{1,5}))?$")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class PatternError(ValueError):
    """A pattern that is not a host, `*.domain`, IP or network (with an optional port)."""


@dataclass(frozen=True)
class HostPattern:
    """One parsed allowlist entry."""

    text: str
    name: str | None = None  # exact host name
    suffix: str | None = None  # `*.example.com` -> "example.com"
    network: IPNetwork | None = None
    port: int | None = None

    @property
    def exact(self) -> bool:
        """Whether the operator named this host (or address) outright."""
        return self.suffix is None

    def matches(self, host: str, port: int | None) -> bool:
        """`host` must already be normalised with `normalise_host`."""
        if self.port is not None and port != self.port:
            return False
        ip = _ip_or_none(host)
        if ip is not None:
            return (
                self.network is not None
                and ip.version == self.network.version
                and (ip in self.network)
            )
        if self.name is not None:
            return host == self.name
        if self.suffix is not None:
            return host.endswith("." + self.suffix)
        return False


def normalise_host(host: str) -> str:
    """Lower case, no trailing dot, no IPv6 brackets, IDNA for non-ASCII names."""
    h = host.strip().rstrip(".").lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if not h.isascii():
        # Left as is when IDNA cannot encode it: it then matches no pattern.
        with contextlib.suppress(UnicodeError):
            h = h.encode("idna").decode("ascii")
    return h


_INET_ATON_RE = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")


def _ip_or_none(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address, including the forms the resolver also reads as one
    (`127.1`, `2130706433`, `0x7f.0.0.1`), so none of them passes as a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _INET_ATON_RE.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def parse_pattern(text: str) -> HostPattern:
    """Parse one pattern; PatternError says what is wrong with it."""
    raw = text.strip() if isinstance(text, str) else ""
    if not raw:
        raise PatternError("empty egress pattern: give a host, *.domain or an IP address")
    if "://" in raw:
        raise PatternError(f"bad egress pattern {raw!r}: give a host, not a URL")
    if any(c.isspace() for c in raw):
        raise PatternError(f"bad egress pattern {raw!r}: a host has no spaces")
    port: int | None = None
    body = raw
    if raw.startswith("["):  # [v6] or [v6]:port
        close = raw.find("]")
        if close < 0:
            raise PatternError(f"bad egress pattern {raw!r}: unclosed '['")
        body, rest = raw[1:close], raw[close + 1 :]
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise PatternError(f"bad egress pattern {raw!r}: expected ]:PORT")
            port = int(rest[1:])
    elif raw.count(":") == 1:  # host:port or v4:port (a bare v6 has several colons)
        m = _PORT_RE.match(raw)
        if m is None or m.group(2) is None:
            raise PatternError(f"bad egress pattern {raw!r}: the port must be a number")
        body, port = m.group(1), int(m.group(2))
    if port is not None and not 1 <= port <= 65535:
        raise PatternError(f"bad egress pattern {raw!r}: port {port} is out of range")

    if "/" in body:
        try:
            net = ipaddress.ip_network(body.strip("[]"), strict=False)
        except ValueError:
            raise PatternError(
                f"bad egress pattern {raw!r}: give a host or an IP network, not a path"
            ) from None
        if net.prefixlen == 0:
            raise PatternError(f"refusing egress pattern {raw!r}: it allows every address")
        return HostPattern(text=raw, network=net, port=port)
    ip = _ip_or_none(body)
    if ip is not None:
        return HostPattern(text=raw, network=ipaddress.ip_network(ip), port=port)
    host = normalise_host(body)
    if host in ("*", "*.") or (host.startswith("*.") and not host[2:]):
        raise PatternError(
            f"refusing egress pattern {raw!r}: list the hosts the bot needs, not everything"
        )
    if host.startswith("*."):
        domain = host[2:]
        if "*" in domain or not _NAME_RE.match(domain):
            raise PatternError(f"bad egress pattern {raw!r}: expected *.domain")
        if "." not in domain:
            raise PatternError(
                f"refusing egress pattern {raw!r}: a whole top-level domain is too broad"
            )
        return HostPattern(text=raw, suffix=domain, port=port)
    if not _NAME_RE.match(host):
        raise PatternError(f"bad egress pattern {raw!r}: not a host name")
    return HostPattern(text=raw, name=host, port=port)


@dataclass(frozen=True)
class Decision:
    """Whether a host may be reached, and why (said to the agent when refused)."""

    allowed: bool
    host: str
    port: int | None
    pattern: HostPattern | None = None

    @property
    def exact(self) -> bool:
        return self.pattern is not None and self.pattern.exact


class Allowlist:
    """An immutable list of patterns; swap the whole object to change it."""

    def __init__(self, patterns: tuple[HostPattern, ...] = ()) -> None:
        self.patterns = patterns

    @classmethod
    def parse(cls, texts: list[str] | tuple[str, ...]) -> Allowlist:
        """Parse every pattern, dropping duplicates; the first bad one raises."""
        seen: dict[str, HostPattern] = {}
        for t in texts:
            p = parse_pattern(t)
            seen.setdefault(p.text, p)
        return cls(tuple(seen.values()))

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.patterns]

    def check(self, host: str | None, port: int | None) -> Decision:
        """The pattern that admits `host:port` (exact ones first), else a refusal."""
        h = normalise_host(host or "")
        found: HostPattern | None = None
        if h:
            for p in self.patterns:
                if p.matches(h, port):
                    if p.exact:  # an exact listing wins over a wildcard
                        return Decision(True, h, port, p)
                    found = found or p
        return Decision(found is not None, h, port, found)


def ip_literal(host: str) -> str | None:
    """The canonical text of `host` if the resolver would read it as an address."""
    ip = _ip_or_none(normalise_host(host))
    return str(ip) if ip is not None else None


# IPv6 prefixes that carry an IPv4 address in their last 32 bits (RFC 6052,
# RFC 8215): on a network with NAT64 they lead to that IPv4 address.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def is_public_address(addr: str) -> bool:
    """False for loopback, private, link-local, CGNAT, reserved, multicast...,
    judging an IPv6 address that embeds an IPv4 one (mapped, NAT64, 6to4) by it."""
    ip = _ip_or_none(addr.split("%", 1)[0])
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif any(ip in net for net in _NAT64):
            ip = ipaddress.IPv4Address(ip.packed[-4:])
    return ip.is_global and not ip.is_multicast


def normalise_patterns(texts: list[str] | tuple[str, ...]) -> list[str]:
    """Validated, de-duplicated pattern texts in the order given (for fleet.toml)."""
    return Allowlist.parse(texts).texts
