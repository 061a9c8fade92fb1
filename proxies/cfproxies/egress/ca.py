"""The bot's interception CA: created in the confdir, public part exported.

The CA key (`mitmproxy-ca.pem`) never leaves the confdir. The public
certificate goes to `--ca-export DIR` as `ca.pem` (for NODE_EXTRA_CA_CERTS,
which adds to Node's roots) and `bundle.pem` = system roots + the CA (for
SSL_CERT_FILE / REQUESTS_CA_BUNDLE, which replace the roots).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mitmproxy import certs

CA_BASENAME = "mitmproxy"
CA_KEY_SIZE = 2048
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
)


def ensure_ca(confdir: Path) -> Path:
    """Create the CA on first start (0700 dir); return its public cert path."""
    confdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    certs.CertStore.from_store(confdir, CA_BASENAME, CA_KEY_SIZE)
    return confdir / f"{CA_BASENAME}-ca-cert.pem"


def _system_roots() -> bytes:
    for path in SYSTEM_BUNDLES:
        try:
            return Path(path).read_bytes()
        except OSError:
            continue
    import certifi

    return Path(certifi.where()).read_bytes()


def _write_public(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # public certificates, read by the gateway's user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_ca(cert: Path, dest: Path) -> None:
    """Write `ca.pem` and `bundle.pem` into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    pem = cert.read_bytes()
    _write_public(dest / "ca.pem", pem)
    roots = _system_roots()
    if not roots.endswith(b"\n"):
        roots += b"\n"
    _write_public(dest / "bundle.pem", roots + pem)
