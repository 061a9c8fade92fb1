"""`cf-egress`: mitmproxy's DumpMaster run from code with the project's addons.

    cf-egress --listen 0.0.0.0:8888 --bot B --audit-dir /audit --confdir /confdir
              --recipient age1... --capture on|off --allow P [--allow P...] [--allow-file F]
              --control /audit/egress.control.json --ca-export /ca-public
              [--upstream-ca FILE] [--body-cap BYTES] [--ws-cap BYTES]

Every flag has an environment variable (`CF_LISTEN`, `CF_BOT`, `CF_AUDIT_DIR`,
`CF_CONFDIR`, `CF_RECIPIENT`, `CF_CAPTURE`, `CF_ALLOW` (one entry a line; a
value without a newline is read the old way, commas or whitespace between
plain hosts), `CF_ALLOW_FILE` (one entry a line, added to the others),
`CF_CONTROL`, `CF_CA_EXPORT`, `CF_UPSTREAM_CA`, `CF_BODY_CAP`, `CF_WS_CAP`).

What the runtime should know (beyond CONTRACTS §8):
- Run the container as the operator's uid:gid (`user="UID:GID"`): the proxy
  writes `traffic.enc.jsonl`, `capture.keys`, `egress.stats.json` and
  `egress.requests.json` (the refused requests, see `ledger`) into
  /audit at 0600 and reads the 0600 control file that cftui writes there.
- Before starting the stack, call `cftui.egress_control.sync_control(home, bot)` so
  the control file matches fleet.toml (the proxy treats what is there at
  start as the baseline and applies later changes only).
- `--listen HOST:0` picks a free port; the line `cf-egress: listening on
  HOST:PORT` on stderr says which, once the proxy accepts connections.
- A listed name is reached only at an address that is public or itself
  listed: a service on the Docker network or the host needs its address (or
  range) in the allowlist next to its name.
- Exit status: 2 for a bad flag (one line on stderr), 1 if it cannot start.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from cfproxies.egress.config import ConfigError, EgressConfig, parse_config
from cfproxies.egress.patterns import Allowlist

log = logging.getLogger("cf-egress")


class Lifecycle:
    """Announces readiness, runs the control loop, forgets the key on exit."""

    def __init__(self, state) -> None:
        self.state = state
        self.task: asyncio.Task | None = None

    def running(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._serve_control(), name="cf-egress control"
        )

    async def _serve_control(self) -> None:
        """Say the proxy listens, then run the control loop, once mitmproxy's
        start is over: until then any error logged (a bad control file
        written the moment we said so) makes mitmproxy exit."""
        from mitmproxy import ctx

        from cfproxies.egress.control import control_loop, control_signature

        await _startup_checked(ctx.master)
        baseline = control_signature(self.state.config.control)
        ps = ctx.master.addons.get("proxyserver")
        addrs = ps.listen_addrs() if ps else []
        where = ", ".join(f"{a[0]}:{a[1]}" for a in addrs) or "?"
        c = self.state.config
        print(
            f"cf-egress: listening on {where} (bot {c.bot}, capture "
            f"{'on' if self.state.capture else 'off'}, {len(c.allow)} allowed patterns)",
            file=sys.stderr,
            flush=True,
        )
        await control_loop(self.state, c.control, baseline)

    def done(self) -> None:
        from cfproxies.egress.control import write_stats

        if self.task is not None:
            self.task.cancel()
        self.state.set_capture(False)
        self.state.running = False
        write_stats(self.state)
        if self.state.ledger is not None:
            self.state.ledger.write()


async def _startup_checked(master, timeout: float = 5.0) -> None:
    """Wait until mitmproxy's ErrorCheck has stopped watching the log (it
    removes its handler from the root logger when start is over)."""
    handler = getattr(master.addons.get("errorcheck"), "logger", None)
    deadline = asyncio.get_running_loop().time() + timeout
    while handler is not None and handler in logging.getLogger().handlers:
        if asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.005)


async def serve(config: EgressConfig) -> None:
    from mitmproxy.options import Options
    from mitmproxy.tools.dump import DumpMaster

    from cfproxies.egress.allowlist import Allowlist as AllowlistAddon
    from cfproxies.egress.capture import Capture
    from cfproxies.egress.ledger import RequestLedger
    from cfproxies.egress.metrics_page import MetricsPage
    from cfproxies.egress.state import EgressState

    opts = Options(
        listen_host=config.listen_host,
        listen_port=config.listen_port,
        mode=["regular"],
        confdir=str(config.confdir),
    )
    master = DumpMaster(opts, with_termlog=False, with_dumper=False)
    opts.update(
        onboarding=False,  # mitm.it must not be a way around the allowlist
        connection_strategy="eager",
        stream_large_bodies="4m",  # request bodies beyond this are not buffered
    )
    if config.upstream_ca is not None:
        opts.update(ssl_verify_upstream_trusted_ca=str(config.upstream_ca))
    state = EgressState(config, Allowlist.parse(config.allow))
    state.ledger = RequestLedger(config.requests_file, config.bot)
    state.ledger.load()
    state.set_capture(config.capture)
    # Order matters: Capture decides tunnel-or-intercept in tls_clienthello,
    # then Allowlist overrides it for a refused SNI; MetricsPage answers
    # /metrics addressed to the proxy before Allowlist would refuse it.
    master.addons.add(
        Capture(state), MetricsPage(state.metrics), AllowlistAddon(state), Lifecycle(state)
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, master.shutdown)
    await master.run()
    # asyncio.run then cancels the connections still open; saying so with a
    # traceback each would make a clean stop look like a crash in the log.
    loop.set_exception_handler(_quiet_when_cancelled)


def _quiet_when_cancelled(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


# What the egress extra brings (proxies/pyproject.toml). mitmproxy pins an
# older cryptography than the app's, so it lives in .venv-egress and the
# egress image only; the app's .venv has the `cf-egress` script too (one
# package, one set of scripts) and must say so in one line, not a traceback.
EGRESS_MODULES = ("mitmproxy", "pyrage")


def missing_dependency() -> str | None:
    """Why this environment cannot run the egress proxy, or None if it can."""
    import importlib.util

    missing = [name for name in EGRESS_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (
        f"{' and '.join(missing)} not installed in this Python environment ({sys.prefix}): "
        "the egress proxy runs from its own, .venv-egress/bin/cf-egress (made by `make venv`), "
        "or in the clawfactory/egress image"
    )


def main(argv: Sequence[str] | None = None) -> int:
    missing = missing_dependency()
    if missing is not None:
        print(f"cf-egress: {missing}", file=sys.stderr)
        return 1
    try:
        config = parse_config(argv)
    except ConfigError as exc:
        if str(exc):
            print(f"cf-egress: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="cf-egress: %(message)s", stream=sys.stderr)
    logging.getLogger("mitmproxy").setLevel(logging.WARNING)
    from cfproxies.egress.ca import ensure_ca, export_ca

    try:
        config.audit_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        cert = ensure_ca(config.confdir)
        if config.ca_export is not None:
            export_ca(cert, config.ca_export)
    except OSError as exc:
        print(f"cf-egress: cannot prepare the CA: {exc}", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(config))
    except OSError as exc:
        print(f"cf-egress: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
