"""A gateway for the Lima escape suite: the agent, as the test drives it.

Runs as a bot's gateway (`cf-gateway@<bot>`, started by the runtime like any
gateway), so what it starts runs with the gateway's uid, in its unit's
sandbox, its cgroup and its seccomp filter, as an agent's tools would.
Stdlib only. HTTP on 127.0.0.1:$DEMO_PORT (the bot's gateway port, which
only the VM's root and the bot's front reach):

- `GET /health`: 200, for the runtime's health wait.
- `POST /probe` (a plan as JSON): runs /code/gateway_probe.py with it (the
  Docker suite's probe, tests/containment/gateway_probe.py) as a child and
  answers its report.
- `POST /spawn` (Python source): starts it as a child that outlives the
  request; answers its pid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ["DEMO_PORT"])
PROBE = "/code/gateway_probe.py"


class Handler(BaseHTTPRequestHandler):
    def _answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(200 if self.path == "/health" else 404, {"ok": self.path == "/health"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
        if self.path == "/probe":
            proc = subprocess.run(
                [sys.executable, PROBE, body], capture_output=True, text=True, timeout=300
            )
            self._answer(
                200, {"code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr[-4000:]}
            )
        elif self.path == "/spawn":
            child = subprocess.Popen(
                [sys.executable, "-c", body],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self._answer(200, {"pid": child.pid})
        else:
            self._answer(404, {})

    def log_message(self, fmt: str, *args: object) -> None:
        print("probe agent:", fmt % args, flush=True)


if __name__ == "__main__":
    print(f"probe agent on 127.0.0.1:{PORT}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
