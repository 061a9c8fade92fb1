"""A stand-in for npm's registry (the outside world of a dependency
install, #24): a small HTTP server in a container, serving one package's
metadata document and tarball as npm's registry protocol does, and logging
each GET as a JSON line. Used by the install tests and `bench/deps_start.py`.

It runs on a network the caller made (a bot's outside network, where only
its egress proxy reaches it), so it is listed in the bot's allowlist by
`IP:port`."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from typing import Any

PORT = 4873
PACKAGE = "left-pad"
VERSION = "1.3.0"
SERVER = r"""
import base64, http.server, json, sys
port, meta, tgz = int(sys.argv[1]), sys.argv[2].encode(), base64.b64decode(sys.argv[3])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("://", 1)[-1]
        path = "/" + path.split("/", 1)[1] if "://" in self.path else path
        here = b"http://" + self.headers.get("Host", "").encode()
        body, kind = (tgz, "application/octet-stream") if path.endswith(".tgz") else (meta.replace(b"__BASE__", here), "application/json")
        if not (path.endswith(".tgz") or path.rstrip("/") == "/left-pad"):
            self.send_response(404); self.end_headers(); return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print(json.dumps({"get": path}), flush=True)
    def log_message(self, *a): pass
print(json.dumps({"ready": True}), flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", port), H).serve_forever()
"""


def tarball() -> bytes:
    """The package's tarball (`package/package.json` and an `index.js`)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in (
            ("package/package.json", json.dumps({"name": PACKAGE, "version": VERSION})),
            ("package/index.js", "module.exports = (s, n) => String(s).padStart(n);\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def metadata(base: str, tgz: bytes) -> str:
    """The package's metadata document (its one version, the tarball's URL
    under `base`, its sha1 and sha512 integrity)."""
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
    version = {
        "name": PACKAGE,
        "version": VERSION,
        "dist": {
            "tarball": f"{base}/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz",
            "shasum": hashlib.sha1(tgz).hexdigest(),
            "integrity": integrity,
        },
    }
    return json.dumps(
        {"name": PACKAGE, "dist-tags": {"latest": VERSION}, "versions": {VERSION: version}}
    )


def manifest(**deps: str) -> str:
    """A save state's package.json declaring `deps`."""
    return json.dumps({"name": "save", "private": True, "dependencies": deps}, indent=1)


@dataclass
class Registry:
    container: Any
    ip: str

    @property
    def key(self) -> str:
        """host:port, as the bot's allowlist names it."""
        return f"{self.ip}:{PORT}"

    @property
    def url(self) -> str:
        return f"http://{self.key}/"

    def gets(self) -> list[str]:
        """The paths GET so far, oldest first."""
        lines = self.container.logs().decode().splitlines()
        return [json.loads(ln)["get"] for ln in lines if '"get"' in ln]


def run_registry(
    client: Any, network: str, name: str, labels: dict[str, str], wait_for: Any
) -> Registry:
    """The registry container `name` on `network`, answering (the caller
    removes it). `wait_for(predicate, timeout, what)` polls."""
    tgz = tarball()
    container = client.containers.run(
        "clawfactory/base:bookworm",
        [
            "python3",
            "-c",
            SERVER,
            str(PORT),
            metadata("__BASE__", tgz),
            base64.b64encode(tgz).decode(),
        ],
        name=name,
        detach=True,
        labels=labels,
        network=network,
    )
    wait_for(lambda: b'"ready"' in container.logs(), 30, "the npm registry stand-in")
    container.reload()
    return Registry(container, container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"])
