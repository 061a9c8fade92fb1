"""The ClawFactory demo agent: a stand-in for an OpenClaw gateway that honours
the same contract, with nothing but the Python standard library.

- HTTP on 0.0.0.0:18789: `/health`, `/healthz`, `/readyz` (JSON) and a small
  status page at `/`.
- Reads its workspace (`/code/workspace/SOUL.md`).
- Every `DEMO_INTERVAL_S` seconds (default 5) asks a model through
  `ANTHROPIC_BASE_URL` (`POST {base}/v1/messages`, `x-api-key:
  $ANTHROPIC_API_KEY`, which is the bot's proxy token, never a provider key),
  streamed and not in turn, and now and then through `OPENAI_BASE_URL`.
- Appends what it did to `/state/memory/YYYY-MM-DD.md`.
- Every `DEMO_PROPOSE_EVERY` cycles (default 6, from the first) proposes a
  skill (`/proposals/workspace/skills/<name>/SKILL.md`) and tries to rewrite
  `/code/workspace/SOUL.md` in place, which the read-only approved tree
  refuses: the demo shows both outcomes.
- Tries to reach `CF_DEMO_PROBE_URL` directly (no proxy) and logs that the
  attempt failed, as it must inside a contained stack.
- Every `DEMO_EGRESS_EVERY` cycles (default 2, from the second) fetches
  `CF_DEMO_ALLOWED_URL` and `CF_DEMO_UNLISTED_URL` through the egress proxy
  (`HTTP(S)_PROXY`), as a real agent's tools would: the first is listed and
  passes (the capture shows it), the second is refused (a 403, a line in the
  egress ledger, an egress proposal).
- One log line per action on stdout.

`python3 agent.py --healthcheck` is the image's HEALTHCHECK.
"""

from __future__ import annotations

import html
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PORT = int(os.environ.get("DEMO_PORT", "18789"))
INTERVAL_S = float(os.environ.get("DEMO_INTERVAL_S", "5"))
WORKSPACE = Path(os.environ.get("CF_DEMO_WORKSPACE", "/code/workspace"))
STATE = Path(os.environ.get("CF_DEMO_STATE", os.environ.get("OPENCLAW_STATE_DIR", "/state")))
MODEL = os.environ.get("DEMO_MODEL", "claude-3-5-haiku-latest")
OPENAI_MODEL = os.environ.get("DEMO_OPENAI_MODEL", "gpt-4o-mini")
OPENAI_EVERY = int(os.environ.get("DEMO_OPENAI_EVERY", "3"))
PROBE_URL = os.environ.get("CF_DEMO_PROBE_URL", "")
PROBE_TIMEOUT_S = float(os.environ.get("DEMO_PROBE_TIMEOUT_S", "3"))
CALL_TIMEOUT_S = float(os.environ.get("DEMO_CALL_TIMEOUT_S", "30"))
BOT = os.environ.get("CF_BOT") or socket.gethostname()
PROPOSALS = Path(os.environ.get("CF_DEMO_PROPOSALS", "/proposals"))
PROPOSE_EVERY = int(os.environ.get("DEMO_PROPOSE_EVERY", "6"))
ALLOWED_URL = os.environ.get("CF_DEMO_ALLOWED_URL", "")
UNLISTED_URL = os.environ.get("CF_DEMO_UNLISTED_URL", "")
EGRESS_EVERY = int(os.environ.get("DEMO_EGRESS_EVERY", "2"))

# Model calls go straight to the LLM proxy on the bot's internal network,
# whatever HTTP(S)_PROXY says; the probe goes straight out, to prove that a
# path ignoring the proxy settings fails closed.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# Fetches go through HTTP(S)_PROXY, the egress proxy, like any tool's.
PROXIED = urllib.request.build_opener(urllib.request.ProxyHandler())

stop = threading.Event()
status_lock = threading.Lock()
status: dict[str, object] = {
    "bot": BOT,
    "started": datetime.now(UTC).isoformat(timespec="seconds"),
    "cycles": 0,
    "calls_ok": 0,
    "calls_failed": 0,
    "probes_blocked": 0,
    "probes_reached": 0,
    "fetches_ok": 0,
    "fetches_refused": 0,
    "last": [],
}


def log(action: str, text: str) -> None:
    """One line per action on stdout; also kept for the status page."""
    now = datetime.now(UTC).strftime("%H:%M:%S")
    line = f"{action}: {text}"
    print(f"{now} {line}", flush=True)
    with status_lock:
        last = status["last"]
        assert isinstance(last, list)
        last.append(f"{now} {line}")
        del last[:-20]


def bump(key: str) -> None:
    with status_lock:
        value = status[key]
        assert isinstance(value, int)
        status[key] = value + 1


def read_soul() -> str:
    try:
        return (WORKSPACE / "SOUL.md").read_text(encoding="utf-8")
    except OSError as exc:
        log("workspace", f"cannot read {WORKSPACE / 'SOUL.md'}: {exc.strerror}")
        return "You are a small demo agent."


def _post(url: str, headers: dict[str, str], body: dict) -> urllib.request.Request:
    data = json.dumps(body).encode()
    return urllib.request.Request(
        url, data=data, method="POST", headers={"content-type": "application/json", **headers}
    )


def _sse_text(resp) -> str:
    """Reassemble the text of an Anthropic or OpenAI event stream."""
    parts: list[str] = []
    for raw in resp:
        line = raw.decode("utf-8", errors="replace").strip()
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            break
        try:
            event = json.loads(payload)
        except ValueError:
            continue
        delta = event.get("delta") or {}
        if isinstance(delta, dict) and delta.get("text"):
            parts.append(delta["text"])
        for choice in event.get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if content:
                parts.append(content)
    return "".join(parts)


def ask_anthropic(soul: str, prompt: str, stream: bool) -> str:
    base = os.environ.get("ANTHROPIC_BASE_URL", "").rstrip("/")
    if not base:
        raise RuntimeError("ANTHROPIC_BASE_URL is not set")
    req = _post(
        f"{base}/v1/messages",
        {
            "x-api-key": os.environ.get("ANTHROPIC_API_KEY", ""),
            "anthropic-version": "2023-06-01",
        },
        {
            "model": MODEL,
            "max_tokens": 128,
            "system": soul[:4000],
            "stream": stream,
            "messages": [{"role": "user", "content": prompt}],
        },
    )
    with DIRECT.open(req, timeout=CALL_TIMEOUT_S) as resp:
        if stream:
            return _sse_text(resp)
        body = json.loads(resp.read())
    return "".join(b.get("text", "") for b in body.get("content", []) if isinstance(b, dict))


def ask_openai(soul: str, prompt: str) -> str:
    base = os.environ.get("OPENAI_BASE_URL", "").rstrip("/")
    req = _post(
        f"{base}/chat/completions",
        {"authorization": f"Bearer {os.environ.get('OPENAI_API_KEY', '')}"},
        {
            "model": OPENAI_MODEL,
            "max_tokens": 128,
            "messages": [
                {"role": "system", "content": soul[:4000]},
                {"role": "user", "content": prompt},
            ],
        },
    )
    with DIRECT.open(req, timeout=CALL_TIMEOUT_S) as resp:
        body = json.loads(resp.read())
    return str(((body.get("choices") or [{}])[0].get("message") or {}).get("content") or "")


def remember(text: str) -> None:
    now = datetime.now(UTC)
    path = STATE / "memory" / f"{now:%Y-%m-%d}.md"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"- {now:%H:%M:%S}Z {text}\n")
    except OSError as exc:
        log("memory", f"cannot write {path}: {exc.strerror}")
        return
    log("memory", f"appended to {path}")


def probe() -> None:
    """Reach out directly; inside a contained stack this must fail."""
    if not PROBE_URL:
        return
    try:
        with DIRECT.open(PROBE_URL, timeout=PROBE_TIMEOUT_S) as resp:
            code = resp.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        bump("probes_blocked")
        log("probe", f"direct connection to {PROBE_URL} failed, as it must ({reason})")
        return
    bump("probes_reached")
    log("probe", f"CONTAINMENT BROKEN: reached {PROBE_URL} directly (HTTP {code})")


def fetch(url: str) -> None:
    """One GET through the egress proxy; logs what the proxy answered."""
    try:
        with PROXIED.open(url, timeout=PROBE_TIMEOUT_S) as resp:
            code = resp.status
    except urllib.error.HTTPError as exc:
        bump("fetches_refused")
        log("fetch", f"{url} through the egress proxy: HTTP {exc.code}")
        return
    except (OSError, ValueError) as exc:
        bump("fetches_refused")
        log("fetch", f"{url} through the egress proxy failed ({getattr(exc, 'reason', exc)})")
        return
    bump("fetches_ok")
    log("fetch", f"{url} through the egress proxy: HTTP {code}")


def propose(n: int) -> None:
    """Propose a skill the way an agent must (in the proposals tree), then
    try the forbidden way (rewrite the approved SOUL.md in place)."""
    name = f"demo-skill-{n}"
    path = PROPOSALS / "workspace" / "skills" / name / "SKILL.md"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"---\nname: {name}\ndescription: a skill the demo agent proposed in cycle {n}\n---\n"
            "\nSay hello to whoever asks.\n",
            encoding="utf-8",
        )
    except OSError as exc:
        log("propose", f"cannot propose {path}: {exc.strerror}")
    else:
        log("propose", f"proposed skill {name} at {path}")
    soul = WORKSPACE / "SOUL.md"
    try:
        with open(soul, "a", encoding="utf-8") as fh:
            fh.write(f"\nI may do anything (cycle {n}).\n")
    except OSError as exc:
        log("propose", f"rewriting {soul} directly failed, as it must ({exc.strerror})")
    else:
        log("propose", f"APPROVED TREE WRITABLE: rewrote {soul} directly")


def one_line(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cycle(n: int) -> None:
    soul = read_soul()
    log("workspace", f"read SOUL.md ({len(soul)} chars)")
    prompt = f"Cycle {n}: say in one sentence what you will do next."
    use_openai = bool(os.environ.get("OPENAI_BASE_URL")) and OPENAI_EVERY > 0
    use_openai = use_openai and n % OPENAI_EVERY == OPENAI_EVERY - 1
    stream = n % 2 == 1
    what = "openai" if use_openai else f"anthropic{' stream' if stream else ''}"
    try:
        started = time.monotonic()
        reply = ask_openai(soul, prompt) if use_openai else ask_anthropic(soul, prompt, stream)
    except urllib.error.HTTPError as exc:
        bump("calls_failed")
        log("llm", f"{what} call failed: HTTP {exc.code}")
    except (OSError, ValueError, RuntimeError) as exc:
        bump("calls_failed")
        log("llm", f"{what} call failed: {getattr(exc, 'reason', exc)}")
    else:
        bump("calls_ok")
        ms = (time.monotonic() - started) * 1000
        log("llm", f"{what} call ok in {ms:.0f} ms: {one_line(reply)}")
        remember(f"cycle {n} ({what}): {one_line(reply, 200)}")
    probe()
    if EGRESS_EVERY > 0 and n % EGRESS_EVERY == 1 % EGRESS_EVERY:
        for url in (ALLOWED_URL, UNLISTED_URL):
            if url:
                fetch(url)
    if PROPOSE_EVERY > 0 and n % PROPOSE_EVERY == 0:
        propose(n)
    bump("cycles")


def loop() -> None:
    n = 0
    while not stop.is_set():
        try:
            cycle(n)
        except Exception as exc:  # keep the agent alive whatever one cycle does
            log("error", f"cycle {n}: {exc!r}")
        n += 1
        stop.wait(INTERVAL_S)


class Handler(BaseHTTPRequestHandler):
    server_version = "cf-demo-agent/1"

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        with status_lock:
            snap = json.loads(json.dumps(status))
        if path in ("/health", "/healthz", "/readyz", "/ready"):
            body = {"ok": True, **{k: v for k, v in snap.items() if k != "last"}}
            self._send(200, json.dumps(body).encode(), "application/json")
        elif path == "/":
            rows = "\n".join(f"<li>{html.escape(x)}</li>" for x in reversed(snap["last"]))
            page = (
                "<!doctype html><meta charset=utf-8>"
                f"<title>demo agent {html.escape(BOT)}</title>"
                f"<h1>demo agent {html.escape(BOT)}</h1>"
                f"<p>up since {snap['started']}; {snap['cycles']} cycles, "
                f"{snap['calls_ok']} model calls ok, {snap['calls_failed']} failed, "
                f"{snap['probes_blocked']} direct probes blocked, "
                f"{snap['probes_reached']} reached.</p><ul>{rows}</ul>"
            )
            self._send(200, page.encode(), "text/html; charset=utf-8")
        else:
            self._send(404, b'{"error": "not found"}', "application/json")

    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass  # health checks every few seconds would drown the action log


def healthcheck() -> int:
    try:
        with DIRECT.open(f"http://127.0.0.1:{PORT}/health", timeout=2) as resp:
            return 0 if resp.status == 200 else 1
    except OSError:
        return 1


def main() -> int:
    if "--healthcheck" in sys.argv[1:]:
        return healthcheck()
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True

    def on_signal(signum: int, _frame: object) -> None:
        log("stop", f"signal {signum}: shutting down")
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log("start", f"demo agent {BOT} listening on 0.0.0.0:{PORT}, every {INTERVAL_S:g} s")
    worker = threading.Thread(target=loop, name="agent-loop", daemon=True)
    worker.start()
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
