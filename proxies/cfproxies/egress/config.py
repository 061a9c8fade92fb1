"""`cf-egress`'s configuration: one frozen dataclass from flags and env.

Everything is validated here, at start, with a one-line error; nothing else
reads `os.environ` later.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cfproxies.cli import OneLineParser
from cfproxies.egress.patterns import METHODS, Allowlist, PatternError, parse_allow_lines

BOT_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
DEFAULT_BODY_CAP = 256 * 1024
DEFAULT_WS_CAP = 1024 * 1024
MAX_ALLOW_FILE = 1024 * 1024


class ConfigError(ValueError):
    """A flag or variable that cannot be used; printed as one line, exit 2."""


@dataclass(frozen=True)
class EgressConfig:
    listen_host: str
    listen_port: int
    bot: str
    audit_dir: Path
    confdir: Path
    recipient: str
    capture: bool
    allow: tuple[str, ...]
    control: Path | None
    ca_export: Path | None
    upstream_ca: Path | None
    body_cap: int
    ws_cap: int

    @property
    def capture_log(self) -> Path:
        return self.audit_dir / "traffic.enc.jsonl"

    @property
    def capture_keys(self) -> Path:
        return self.audit_dir / "capture.keys"

    @property
    def stats_file(self) -> Path:
        return self.audit_dir / "egress.stats.json"

    @property
    def requests_file(self) -> Path:
        """The ledger of refused requests (`ledger`), read by cftui."""
        return self.audit_dir / "egress.requests.json"


def env_allow(value: str) -> list[str]:
    """The entries of `CF_ALLOW`: one a line when it holds a newline (entries
    with methods and paths hold spaces and commas); else the old form, where
    commas or whitespace separate plain host patterns (`a.com, *.b.com`)."""
    if "\n" in value:
        return parse_allow_lines(value)
    words = [p for p in re.split(r"[,\s]+", value) if p]
    for w in words:
        # A method or a path prefix: splitting would make it a host, or lose it.
        if w == "*" or w.startswith("/") or w in METHODS:
            raise ConfigError(
                f"CF_ALLOW: {w[:40]!r} looks like part of a rule (methods, paths): "
                "give one entry a line"
            )
    return words


def _read_allow_file(path: str) -> list[str]:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_ALLOW_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"--allow-file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_ALLOW_FILE:
        raise ConfigError(f"--allow-file {path}: larger than {MAX_ALLOW_FILE} bytes")
    try:
        return parse_allow_lines(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"--allow-file {path}: not UTF-8 text") from None


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = OneLineParser(
        prog="cf-egress",
        description="The bot's egress proxy: an allowlist, and MITM capture when asked.",
    )
    p.add_argument("--listen", default=env("CF_LISTEN", "0.0.0.0:8888"), metavar="HOST:PORT")
    p.add_argument("--bot", default=env("CF_BOT"), help="the bot's name (written in records)")
    p.add_argument("--audit-dir", default=env("CF_AUDIT_DIR"), metavar="DIR")
    p.add_argument("--confdir", default=env("CF_CONFDIR"), metavar="DIR", help="the CA lives here")
    p.add_argument("--recipient", default=env("CF_RECIPIENT"), metavar="AGE1...")
    p.add_argument("--capture", choices=("on", "off"), default=env("CF_CAPTURE", "off"))
    p.add_argument(
        "--allow",
        action="append",
        default=None,
        metavar="ENTRY",
        help="repeatable: HOST [METHODS] [/PREFIX ...] (CF_ALLOW: one entry a line)",
    )
    p.add_argument(
        "--allow-file",
        default=env("CF_ALLOW_FILE"),
        metavar="FILE",
        help="more entries, one a line (# comments); how Lima passes them",
    )
    p.add_argument("--control", default=env("CF_CONTROL"), metavar="FILE")
    p.add_argument("--ca-export", default=env("CF_CA_EXPORT"), metavar="DIR")
    p.add_argument(
        "--upstream-ca",
        default=env("CF_UPSTREAM_CA"),
        metavar="FILE",
        help="extra CA (PEM) to trust for upstream servers while intercepting",
    )
    # String defaults go through `type` too, so a bad variable is a usage error.
    p.add_argument(
        "--body-cap", type=int, default=env("CF_BODY_CAP", str(DEFAULT_BODY_CAP)), metavar="BYTES"
    )
    p.add_argument(
        "--ws-cap", type=int, default=env("CF_WS_CAP", str(DEFAULT_WS_CAP)), metavar="BYTES"
    )
    return p


def _listen(spec: str) -> tuple[str, int]:
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen {spec!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def _required(value: str | None, flag: str, env: str) -> str:
    if not value:
        raise ConfigError(f"{flag} is required (or set {env})")
    return value


def parse_config(argv: Sequence[str] | None = None) -> EgressConfig:
    """Flags win over environment variables; raises ConfigError on bad input."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one line
        raise ConfigError("") from exc
    host, port = _listen(args.listen)
    bot = _required(args.bot, "--bot", "CF_BOT")
    if not BOT_RE.fullmatch(bot):
        raise ConfigError(f"--bot {bot!r} is not a valid bot name")
    recipient = _required(args.recipient, "--recipient", "CF_RECIPIENT").strip()
    if not recipient.startswith("age1"):
        raise ConfigError("--recipient must be an age X25519 public key (age1...)")
    try:
        from pyrage import x25519

        x25519.Recipient.from_str(recipient)
    except ImportError:  # pragma: no cover - the egress extra brings pyrage
        pass
    except Exception:
        raise ConfigError(f"--recipient {recipient[:12]}...: not a valid age recipient") from None
    allow = args.allow if args.allow is not None else env_allow(os.environ.get("CF_ALLOW", ""))
    if args.allow_file:
        allow = [*allow, *_read_allow_file(args.allow_file)]
    try:
        patterns = tuple(Allowlist.parse(allow).texts)
    except PatternError as exc:
        raise ConfigError(str(exc)) from None
    if args.body_cap < 0 or args.ws_cap < 0:
        raise ConfigError("--body-cap and --ws-cap must be 0 or more bytes")
    upstream_ca = Path(args.upstream_ca) if args.upstream_ca else None
    if upstream_ca is not None and not upstream_ca.is_file():
        raise ConfigError(f"--upstream-ca {upstream_ca}: no such file")
    audit_dir = Path(_required(args.audit_dir, "--audit-dir", "CF_AUDIT_DIR"))
    if not audit_dir.is_dir():
        raise ConfigError(f"--audit-dir {audit_dir}: no such directory")
    return EgressConfig(
        listen_host=host,
        listen_port=port,
        bot=bot,
        audit_dir=audit_dir,
        confdir=Path(_required(args.confdir, "--confdir", "CF_CONFDIR")),
        recipient=recipient,
        capture=args.capture == "on",
        allow=patterns,
        control=Path(args.control) if args.control else None,
        ca_export=Path(args.ca_export) if args.ca_export else None,
        upstream_ca=upstream_ca,
        body_cap=args.body_cap,
        ws_cap=args.ws_cap,
    )
