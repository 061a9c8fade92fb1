"""Benchmark: HTTPS requests through `cf-egress` for a host listed plainly
(a tunnel: the proxy relays TLS bytes it cannot read) beside the same host
listed by a method/path rule (inspected: TLS terminated with the capture CA,
each request checked, then re-encrypted upstream), against a direct
baseline, all in the same run (issue 18). Capture is off in both.

    .venv/bin/python bench/egress_rules.py    # --requests 600 --concurrency 8 --rounds 3

For each way (direct, tunnel, inspected) and each connection use:
- `keep-alive`: one connection per client task, reused for every request
  (what an agent's SDK does);
- `new conn`: a fresh TCP + TLS connection per request (for the inspected
  way that is two TLS handshakes, and mitmproxy's certificate, cached per
  host after the first),

it prints p50/p99 latency at concurrency 1, the latency the proxy adds
(p50 minus direct's), and req/s at `--concurrency` with its ratio to direct,
and to the tunnel for the inspected way. The upstream is an aiohttp HTTPS
server answering a small JSON body, in a process of its own; the client is
aiohttp (CONNECT through the proxy). Everything runs on this machine: the
header gives its load, and figures move with it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp
import trustme

REPO = Path(__file__).resolve().parents[1]
CF_EGRESS = REPO / ".venv-egress" / "bin" / "cf-egress"
# Any valid age recipient: capture stays off, nothing is encrypted to it.
RECIPIENT = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq"
PATH = "/ok/item"

UPSTREAM = textwrap.dedent(
    """
    import ssl, sys
    from aiohttp import web
    body = b'{"ok": true, "items": [1, 2, 3], "pad": "' + b"x" * 400 + b'"}'
    async def handle(request):
        return web.Response(body=body, content_type="application/json")
    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[1])
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), ssl_context=ctx,
                print=None, access_log=None)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited early")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not start")


def start_egress(
    tmp: Path, name: str, allow: list[str], ca_pem: Path
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    audit = tmp / name / "audit"
    audit.mkdir(parents=True)
    argv = [
        str(CF_EGRESS),
        "--listen", f"127.0.0.1:{port}",
        "--bot", "bench",
        "--audit-dir", str(audit),
        "--confdir", str(tmp / "confdir"),  # one CA for both proxies
        "--recipient", RECIPIENT,
        "--capture", "off",
        "--ca-export", str(tmp / name / "ca"),
        "--upstream-ca", str(ca_pem),
    ]  # fmt: skip
    for entry in allow:
        argv += ["--allow", entry]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc, f"cf-egress ({name})")
    return proc, port


async def one(session: aiohttp.ClientSession, url: str, proxy: str | None) -> float:
    t0 = time.perf_counter()
    async with session.get(url, proxy=proxy) as resp:
        await resp.read()
        if resp.status != 200:
            raise SystemExit(f"{url} via {proxy}: HTTP {resp.status}")
    return time.perf_counter() - t0


async def run(
    url: str, proxy: str | None, ctx: ssl.SSLContext, n: int, concurrency: int, fresh: bool
) -> tuple[list[float], float]:
    """Latencies of `n` requests spread over `concurrency` tasks, and req/s."""
    latencies: list[float] = []
    per_task = max(1, n // concurrency)

    async def task() -> None:
        conn = aiohttp.TCPConnector(ssl=ctx, limit=1, force_close=fresh)
        async with aiohttp.ClientSession(connector=conn) as s:
            await one(s, url, proxy)  # warm: the connection, mitmproxy's certificate
            for _ in range(per_task):
                latencies.append(await one(s, url, proxy))

    t0 = time.perf_counter()
    await asyncio.gather(*(task() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    return latencies, (per_task + 1) * concurrency / wall


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


async def bench(args: argparse.Namespace) -> None:
    ca = trustme.CA()
    with tempfile.TemporaryDirectory(prefix="cf-bench-egress-") as tmpdir:
        tmp = Path(tmpdir)
        ca_pem = tmp / "test-ca.pem"
        ca.cert_pem.write_to_path(str(ca_pem))
        server_pem = tmp / "server.pem"
        ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(server_pem))
        up_port = free_port()
        upstream = subprocess.Popen(
            [sys.executable, "-c", UPSTREAM, str(server_pem), str(up_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs = [upstream]
        try:
            wait_port(up_port, upstream, "upstream")
            target = f"localhost:{up_port}"
            address = f"127.0.0.1:{up_port}"  # a name never opens a loopback address alone
            tunnel, t_port = start_egress(tmp, "tunnel", [target, address], ca_pem)
            procs.append(tunnel)
            rule = "GET /ok/"
            inspected, i_port = start_egress(
                tmp, "inspected", [f"{target} {rule}", f"{address} {rule}"], ca_pem
            )
            procs.append(inspected)
            mitm_ca = tmp / "inspected" / "ca" / "ca.pem"
            deadline = time.monotonic() + 10
            while not mitm_ca.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            ctx = ssl.create_default_context(cafile=str(ca_pem))
            ctx.load_verify_locations(cafile=str(mitm_ca))
            url = f"https://{target}{PATH}"
            ways = {
                "direct": None,
                "tunnel (host entry)": f"http://127.0.0.1:{t_port}",
                "inspected (GET /ok/ rule)": f"http://127.0.0.1:{i_port}",
            }
            load = os.getloadavg()
            print(
                f"egress rules bench: {args.requests} requests a row in {args.rounds} interleaved "
                f"rounds, concurrency 1 and {args.concurrency}, https, capture off; python "
                f"{sys.version.split()[0]}, aiohttp {aiohttp.__version__}, "
                f"{os.cpu_count()} CPUs, load {load[0]:.2f} {load[1]:.2f}"
            )
            for fresh in (False, True):
                # Rounds interleave the ways, so that a burst of load elsewhere
                # on the machine falls on all of them; req/s is the median round.
                lats: dict[str, list[float]] = {name: [] for name in ways}
                rates: dict[str, list[float]] = {name: [] for name in ways}
                for _ in range(args.rounds):
                    for name, proxy in ways.items():
                        n = args.requests // args.rounds
                        lat, _ = await run(url, proxy, ctx, n // 2, 1, fresh)
                        _, rps = await run(url, proxy, ctx, n, args.concurrency, fresh)
                        lats[name] += lat
                        rates[name].append(rps)
                rows = {
                    name: (
                        pct(lats[name], 0.5),
                        pct(lats[name], 0.99),
                        statistics.median(rates[name]),
                    )
                    for name in ways
                }
                base_p50, _, base_rps = rows["direct"]
                tunnel_rps = rows["tunnel (host entry)"][2]
                tunnel_p50 = rows["tunnel (host entry)"][0]
                print()
                print(f"connections: {'new conn per request' if fresh else 'keep-alive'}")
                print(
                    f"  {'way':<27} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} "
                    f"{'req/s':>8} {'vs direct':>10} {'vs tunnel':>10}"
                )
                for name, (p50, p99, rps) in rows.items():
                    added = "" if name == "direct" else f"{p50 - base_p50:+.2f}"
                    vs_tunnel = (
                        f"{rps / tunnel_rps:.2f}x (+{p50 - tunnel_p50:.2f} ms)"
                        if name.startswith("inspected")
                        else ""
                    )
                    print(
                        f"  {name:<27} {p50:8.2f} {p99:8.2f} {added:>10} {rps:8.0f} "
                        f"{rps / base_rps:9.2f}x {vs_tunnel:>10}"
                    )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=600, help="per row (half at concurrency 1)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every way")
    asyncio.run(bench(p.parse_args()))


if __name__ == "__main__":
    main()
