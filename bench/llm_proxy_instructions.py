"""The proxy's CPU per call counted in instructions (callgrind), not in time:
the same number on a quiet machine and on a loaded one, so two versions of
the proxy can be compared when the machine is shared (issue 4's figures in
bench/README.md move by +-40 us a call from run to run, and far more when
other work runs).

    .venv/bin/python bench/llm_proxy_instructions.py                  # 2000 plain calls at 16
    .venv/bin/python bench/llm_proxy_instructions.py --calls 500 --stream
    .venv/bin/python bench/llm_proxy_instructions.py --baseline /path/to/other/checkout \
        --variant "budgets=--daily-usd-budget 1000000 --monthly-usd-budget 1000000"

`--baseline DIR` runs the same calls first through the proxy of another
checkout (its `proxies/` first on PYTHONPATH: issue 19 measured pricing this
way, against the main branch without it), then through this one, and prints
the ratio; each `--variant NAME=FLAGS` is one more run of this checkout's
proxy with those flags (the money budgets, say).

`--otel` runs this checkout's proxy twice, without and then with
`OTEL_EXPORTER_OTLP_ENDPOINT` set to a loopback OTLP/HTTP receiver (the
tests' own, tests/proxies/otlp_receiver.py, which decodes every span it is
sent), and prints the ratio (issue #23: a span should cost a call little).
Callgrind then counts each thread apart: the event loop's instructions (what
a call waits for) and the SDK's export thread's (batched off the request
path, but CPU the sidecar still spends), both per call.

The proxy runs under `valgrind --tool=callgrind` (some 50x slower) behind the
same fast upstream as bench/llm_proxy.py (the `sdk` harness's aiohttp.web
upstream, with the same canned Anthropic answers); its counters are zeroed
after a warm-up and dumped after `--calls` calls from `--concurrency`
connections. Prints user-space instructions per call: what the proxy's own
code costs (kernel time, the writes and the socket calls, is not in it).
Needs valgrind on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from llm_proxy import bench_home, canned_request, free_port, proxy_command, wait_up

REPO = Path(__file__).resolve().parent.parent


async def calls(
    url: str, n: int, concurrency: int, stream: bool, statuses: list[int] | None = None
) -> int:
    """`n` calls in a closed loop over `concurrency` connections; the errors
    (their statuses appended to `statuses`)."""
    request = canned_request(url, stream)
    head, body = request.split(b"\r\n\r\n", 1)
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, value = line.decode().split(": ", 1)
        if name.lower() not in ("host", "content-length"):
            headers[name] = value
    left = n
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def worker() -> None:
            nonlocal left, errors
            while left > 0:
                left -= 1
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                        if statuses is not None:
                            statuses.append(resp.status)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


def control(pid: int, flag: str) -> None:
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True)


def total_instructions(out: Path) -> int:
    """The `Ir` total of the last dump callgrind wrote for this run."""
    dumps = sorted(out.parent.glob(out.name + "*"), key=lambda p: p.stat().st_mtime)
    for dump in reversed(dumps):
        match = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(), re.M)
        if match:
            return int(match.group(1))
    raise SystemExit(f"bench: no callgrind totals in {out}*")


def thread_instructions(out: Path) -> dict[int, int]:
    """With `--separate-threads=yes`: the `Ir` of each thread in the first
    `--dump` (files `out.1-NN`, NN the thread), by thread number (1: the
    main thread, the proxy's event loop)."""
    totals: dict[int, int] = {}
    for dump in out.parent.glob(out.name + ".1-*"):
        match = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(), re.M)
        if match:
            totals[int(dump.name.rpartition("-")[2])] = int(match.group(1))
    if not totals:
        raise SystemExit(f"bench: no callgrind dump of each thread in {out}.1-*")
    return totals


async def measure(
    args: argparse.Namespace,
    src: Path | None = None,
    extra: list[str] | None = None,
    otlp: str | None = None,
) -> float:
    """Instructions a call in the proxy of `src` (a checkout; None: this
    one), run with `extra` flags and, with `otlp`, that span endpoint;
    printed and returned (with `otlp` or `--otel`: the event loop's thread
    only, the other threads printed beside it)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("bench: valgrind is not installed")
    py = sys.executable
    env = dict(os.environ)
    for name in [n for n in env if n.startswith("OTEL_")]:
        del env[name]  # the proxy's spans on only where asked
    if otlp is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp
    threads = args.otel
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src / "proxies"), env.get("PYTHONPATH", "")])
    bindir = Path(py).parent
    tmp = bench_home()
    up_port, proxy_port = free_port(), free_port()
    here = str(Path(__file__).resolve().parent / "llm_proxy.py")
    upstream = subprocess.Popen(
        [py, here, "--serve-upstream-sdk", str(up_port)], stderr=subprocess.PIPE
    )
    out = tmp / "callgrind.out"
    proxy = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            *(["--separate-threads=yes"] if threads else []),
            str(bindir / "python"),
            *proxy_command(bindir, proxy_port, tmp, up_port),
            *(extra or []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        await wait_up(f"http://127.0.0.1:{up_port}/health", upstream)
        for _ in range(600):  # valgrind starts slowly
            try:
                await wait_up(f"http://127.0.0.1:{proxy_port}/health", proxy)
                break
            except SystemExit:
                if proxy.poll() is not None:
                    raise
        url = f"http://127.0.0.1:{proxy_port}/anthropic/v1/messages"
        await calls(url, args.warmup, args.concurrency, args.stream)
        control(proxy.pid, "--zero")
        t0 = time.monotonic()
        failed: list[int] = []
        errors = await calls(url, args.calls, args.concurrency, args.stream, failed)
        control(proxy.pid, "--dump")
        elapsed = time.monotonic() - t0
        others = ""
        if threads:
            each = thread_instructions(out)
            per_call = each.get(1, 0) / args.calls
            rest = sum(v for k, v in each.items() if k != 1) / args.calls
            others = f"; other threads {rest / 1000:.1f} k a call ({len(each) - 1} threads)"
        else:
            per_call = total_instructions(out) / args.calls
        if args.keep:
            latest = max(out.parent.glob(out.name + "*"), key=lambda p: p.stat().st_mtime)
            shutil.copy(latest, args.keep)
        mode = "stream" if args.stream else "plain"
        label = f"{src}" if src is not None else "this checkout"
        where = " in the event loop's thread" if threads else " in the proxy"
        spans = " OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp if otlp else ""
        print(
            f"{mode} conc={args.concurrency} calls={args.calls} errors={errors}"
            f"{' (HTTP ' + ','.join(map(str, sorted(set(failed)))) + ')' if failed else ''}: "
            f"{per_call / 1000:.1f} k instructions a call{where}{others} "
            f"[{label}{' ' + ' '.join(extra) if extra else ''}{spans}] "
            f"(under callgrind {elapsed:.0f} s)",
            flush=True,
        )
        return per_call
    finally:
        for proc in (proxy, upstream):
            proc.send_signal(signal.SIGTERM)
        for proc in (proxy, upstream):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--keep", help="copy the callgrind dump here (for callgrind_annotate)")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument(
        "--variant", action="append", default=[], metavar="NAME=FLAGS", help="repeatable"
    )
    parser.add_argument(
        "--otel", action="store_true", help="without, then with a loopback OTLP endpoint"
    )
    args = parser.parse_args()
    asyncio.run(otel(args) if args.otel else compare(args))


async def otel(args: argparse.Namespace) -> None:
    """This checkout's proxy without an OTLP endpoint, then with one: the
    receiver is the tests' (it decodes each export, as a collector would)."""
    sys.path.insert(0, str(REPO))
    from tests.proxies.otlp_receiver import otlp_receiver

    off = await measure(args)
    with otlp_receiver() as rx:
        on = await measure(args, otlp=rx.url)
        spans = len(rx.spans)
    print(
        f"spans received: {spans} (warm-up and measured calls); per call in the event loop: "
        f"{off / 1000:.1f} k without an endpoint, {on / 1000:.1f} k with one, "
        f"{on / off:.3f}x"
    )


async def compare(args: argparse.Namespace) -> None:
    base = await measure(args, args.baseline) if args.baseline else None
    ours = await measure(args)
    rows = [("this checkout", ours)]
    for variant in args.variant:
        name, _, flags = variant.partition("=")
        rows.append((name, await measure(args, None, flags.split())))
    if base is not None:
        print(f"baseline {args.baseline}: {base / 1000:.1f} k instructions a call")
        for name, value in rows:
            print(f"{name}: {value / 1000:.1f} k a call, {value / base:.3f}x the baseline")


if __name__ == "__main__":
    main()
