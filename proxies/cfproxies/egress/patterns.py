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

An entry may narrow its host to methods and path prefixes (a *rule*):

    HOST [METHODS] [PREFIX ...]      api.github.com GET,HEAD /repos/acme/

- METHODS: comma separated HTTP methods (any case, kept in upper case, and
  compared with the request's method in upper case), or `*` for any; absent
  means any. Only the registered methods (`METHODS`) are accepted, so a
  typo is an error rather than a method that never matches.
- PREFIX: starts with `/`; a request matches when its path (query dropped)
  starts with it, character for character (end it with `/` to stop at a
  segment: `/repos/acme` also matches `/repos/acmefoo`). None given: any path.
- Paths are compared in one normal form (`normalise_path`): percent-escapes
  of unreserved characters (`A-Z a-z 0-9 - . _ ~`) decoded, other escapes in
  upper case, bytes outside printable ASCII escaped. A request path with a
  `.` or `..` segment, plain or encoded (`%2e%2e`, also behind an encoded
  `%2F` or a backslash, or followed by `;params`), a double-encoded dot,
  slash or backslash (`%252e`), or a bad escape is refused by every rule:
  servers resolve such paths differently, so no prefix can be trusted to
  hold them. A prefix may not contain them either.
- Several entries for one host combine: a request passes when any entry
  that matches its host admits it, so a plain entry for the host (or a
  wildcard that covers it) admits everything, as before. Only a host that
  is matched by rules alone is inspected (TLS terminated with the capture
  CA, capture on or off); a plain host is tunnelled untouched.
- `HOST *` with no prefix is the plain entry `HOST`.

Rules are written back in one canonical form (`Rule.text`): the host as
typed, methods in upper case without repeats, prefixes normalised, single
spaces.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from dataclasses import dataclass, field, replace

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_NAME_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_PORT_RE = re.compile(r"^(.*?)(?::(\d{1,5}))?$")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# Methods a rule may name: RFC 9110's, PATCH, WebDAV's and QUERY. CONNECT
# has no place in a rule: a tunnel inside an inspected connection is refused.
METHODS = frozenset(
    [
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "DELETE",
        "OPTIONS",
        "TRACE",
        "PATCH",
        "QUERY",
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "COPY",
        "MOVE",
        "LOCK",
        "UNLOCK",
        "REPORT",
        "SEARCH",
    ]
)
MAX_ENTRY = 2048  # characters of one allowlist entry
MAX_PREFIX = 512  # characters of one path prefix (and of a suggested one)


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
    methods: frozenset[str] | None = None  # None: any method
    prefixes: tuple[str, ...] = ()  # (): any path

    @property
    def narrow(self) -> bool:
        """Whether this entry admits only some requests (a rule), not the whole host."""
        return self.methods is not None or bool(self.prefixes)

    def admits(self, method: str, path: str | None) -> bool:
        """Whether a request to a host this entry matches is allowed by it.

        `path` must come from `normalise_path` (None: a path no rule admits)."""
        if not self.narrow:
            return True
        if self.methods is not None and method.upper() not in self.methods:
            return False
        if not self.prefixes:
            return True
        return path is not None and any(path.startswith(p) for p in self.prefixes)

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
    """Parse one allowlist entry (a host pattern, optionally narrowed to
    methods and path prefixes); PatternError says what is wrong with it."""
    raw = text.strip() if isinstance(text, str) else ""
    if not raw:
        raise PatternError("empty egress pattern: give a host, *.domain or an IP address")
    if len(raw) > MAX_ENTRY:
        raise PatternError(
            f"bad egress pattern {raw[:40]!r}...: longer than {MAX_ENTRY} characters"
        )
    if "://" in raw:
        raise PatternError(f"bad egress pattern {_short(raw)!r}: give a host, not a URL")
    if any(not (c.isprintable() or c in " \t") for c in raw):
        raise PatternError(f"bad egress pattern {_short(raw)!r}: control characters")
    host_text, *rest = raw.split()
    host = _parse_host(host_text)
    if not rest:
        return host
    methods: frozenset[str] | None = None
    order: list[str] = []
    if not rest[0].startswith("/"):
        token = rest.pop(0)
        if token != "*":
            for m in token.split(","):
                up = m.upper()
                if up not in METHODS:
                    raise PatternError(
                        f"bad egress rule {_short(raw)!r}: {_short(m)!r} is not an HTTP method "
                        f"(give GET,HEAD,... or *, then path prefixes starting with /)"
                    )
                if up not in order:
                    order.append(up)
            methods = frozenset(order)
    prefixes: list[str] = []
    for token in rest:
        if not token.startswith("/"):
            raise PatternError(
                f"bad egress rule {_short(raw)!r}: {_short(token)!r} is not a path prefix "
                f"(a prefix starts with /; methods come once, right after the host)"
            )
        if "?" in token or "#" in token:
            raise PatternError(
                f"bad egress rule {_short(raw)!r}: a path prefix has no query or fragment"
            )
        prefix = normalise_path(token)
        if prefix is None:
            raise PatternError(
                f"bad egress rule {_short(raw)!r}: {_short(token)!r} has a '.' or '..' "
                f"segment or a bad %-escape"
            )
        if len(prefix) > MAX_PREFIX:
            raise PatternError(
                f"bad egress rule {_short(raw)!r}: a path prefix is longer than {MAX_PREFIX}"
            )
        if prefix not in prefixes:
            prefixes.append(prefix)
    if methods is None and not prefixes:
        return host  # `HOST *`: the plain entry
    words = [host.text]
    if order:
        words.append(",".join(order))
    words += prefixes
    return replace(host, text=" ".join(words), methods=methods, prefixes=tuple(prefixes))


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SEPARATORS_RE = re.compile(r"/|\\|%2F|%5C")
_DOUBLE_ENCODED_RE = re.compile(r"%25(2E|2F|5C)", re.IGNORECASE)


def _escape_byte(b: int) -> str:
    return chr(b) if 0x21 <= b <= 0x7E else f"%{b:02X}"


def printable_path(raw: str) -> str:
    """`raw` (a request path, as mitmproxy decodes it: UTF-8 with surrogate
    escapes) with its query dropped and every byte outside printable ASCII
    %-escaped, so it can be shown and stored as plain data."""
    path = raw.split("?", 1)[0].split("#", 1)[0]
    data = path.encode("utf-8", "surrogateescape")
    return "".join(_escape_byte(b) for b in data)


def normalise_path(raw: str) -> str | None:
    """The normal form rules compare (see the module docstring), or None for
    a path no rule may admit: not starting with `/`, a dot segment (plain,
    encoded, behind `%2F`, `\\` or `;`), a double-encoded dot, slash or
    backslash, or a `%` that starts no escape."""
    path = printable_path(raw)
    if not path.startswith("/"):
        return None
    if _DOUBLE_ENCODED_RE.search(path):
        return None
    out: list[str] = []
    i = 0
    while i < len(path):
        c = path[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        m = _ESCAPE_RE.match(path, i)
        if m is None:
            return None
        ch = chr(int(m.group(1), 16))
        out.append(ch if ch in _UNRESERVED else "%" + m.group(1).upper())
        i += 3
    norm = "".join(out)
    for segment in _SEPARATORS_RE.split(norm):
        if segment.split(";", 1)[0] in (".", ".."):
            return None
    return norm


def suggest_prefix(path: str) -> str:
    """The prefix proposed for a refused request: its normalised path up to
    and including the last `/` (its "directory"), cut back to the last `/`
    within `MAX_PREFIX` characters; so `/repos/acme/widgets/issues/12` gives
    `/repos/acme/widgets/issues/`, and `/other` gives `/`."""
    cut = path[: path.rfind("/") + 1] or "/"
    if len(cut) > MAX_PREFIX:
        cut = cut[: cut.rfind("/", 0, MAX_PREFIX) + 1] or "/"
    return cut


def _parse_host(raw: str) -> HostPattern:
    """The host part of an entry: host, *.domain, IP or network, :PORT optional."""
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
    """Whether a host may be reached, and why (said to the agent when refused).

    `rules` are the entries that match the host when all of them are rules
    (then each request to it is inspected and checked); empty when a plain
    entry admits the whole host, or when it is refused."""

    allowed: bool
    host: str
    port: int | None
    pattern: HostPattern | None = None
    rules: tuple[HostPattern, ...] = ()

    @property
    def exact(self) -> bool:
        return self.pattern is not None and self.pattern.exact

    @property
    def inspect(self) -> bool:
        """Whether requests to this host must be looked at (TLS terminated)."""
        return self.allowed and bool(self.rules)


@dataclass(frozen=True)
class RequestDecision:
    """Whether one request may pass, and when not, the narrowest entry that
    would have let it (`suggest`, None when no entry of the grammar can)."""

    allowed: bool
    host: str
    port: int | None
    method: str
    path: str | None  # normalised; None when no rule may admit it
    rules: tuple[HostPattern, ...] = field(default=())  # the rules that did not admit it
    suggest: str | None = None

    @property
    def rule(self) -> HostPattern | None:
        """The rule named in a refusal: the first that matched the host."""
        return self.rules[0] if self.rules else None


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

    @property
    def has_rules(self) -> bool:
        return any(p.narrow for p in self.patterns)

    def check(self, host: str | None, port: int | None) -> Decision:
        """Whether `host:port` is listed: the pattern that admits it (exact
        ones first), and the rules that narrow it when no plain entry does."""
        h = normalise_host(host or "")
        plain: HostPattern | None = None
        rules: list[HostPattern] = []
        if h:
            for p in self.patterns:
                if not p.matches(h, port):
                    continue
                if p.narrow:
                    rules.append(p)
                elif plain is None or (p.exact and not plain.exact):
                    plain = p
        if plain is not None:
            return Decision(True, h, port, plain)
        if rules:
            first = next((r for r in rules if r.exact), rules[0])
            return Decision(True, h, port, first, tuple(rules))
        return Decision(False, h, port)

    def check_request(
        self, host: str | None, port: int | None, method: str, path: str
    ) -> RequestDecision:
        """Whether a request (`path` as sent, query and all) to `host:port`
        passes: its host listed, and, when rules alone list it, one of them
        admitting its method and path."""
        d = self._decide(host, port, method, path)
        return d if d.allowed else replace(d, suggest=self._suggest(d))

    def _decide(
        self, host: str | None, port: int | None, method: str, path: str
    ) -> RequestDecision:
        d = self.check(host, port)
        norm = normalise_path(path)
        if d.allowed and (not d.rules or any(r.admits(method, norm) for r in d.rules)):
            return RequestDecision(True, d.host, port, method, norm)
        return RequestDecision(False, d.host, port, method, norm, d.rules)

    def _suggest(self, d: RequestDecision) -> str | None:
        """The narrowest entry that admits `d`'s request, checked by adding it."""
        target = host_port(d.host, d.port)
        if not d.rules:
            text = target
        elif d.path is None or d.method.upper() not in METHODS:
            return None
        else:
            text = f"{target} {d.method.upper()} {suggest_prefix(d.path)}"
        try:
            entry = parse_pattern(text)
        except PatternError:
            return None
        trial = Allowlist((*self.patterns, entry))
        # The path given back is the normalised one, which passes unchanged.
        ok = trial._decide(d.host, d.port, d.method, d.path or "/")
        return entry.text if ok.allowed else None


def host_port(host: str, port: int | None) -> str:
    """`host:port` as an entry writes it (an IPv6 address in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port else shown


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


def parse_allow_lines(text: str) -> list[str]:
    """The entries of an allowlist file (or of a CF_ALLOW holding newlines):
    one entry a line, as entries hold spaces and commas; blank lines and
    lines starting with `#` are skipped. Not validated here."""
    out: list[str] = []
    for line in text.splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            out.append(entry)
    return out


def format_allow_lines(texts: list[str] | tuple[str, ...]) -> str:
    """The text `parse_allow_lines` reads back as `texts` (validated entries
    never hold a newline)."""
    return "".join(f"{t}\n" for t in texts)


def normalise_patterns(texts: list[str] | tuple[str, ...]) -> list[str]:
    """Validated, de-duplicated pattern texts in the order given (for fleet.toml)."""
    return Allowlist.parse(texts).texts
