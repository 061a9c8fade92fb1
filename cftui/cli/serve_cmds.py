"""`cftui serve`: the controller's thin CLI face (CONTRACTS §11). Parses,
checks, then hands over to `cftui.controller.service`."""

from __future__ import annotations

import argparse
import sys

from cftui.cli.common import add_command, resolve_home, run_async


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "serve",
        "the controller: scheduled snapshots, GitHub webhooks, remote kill, "
        "lifecycle webhooks and the gateway watchdog, until Ctrl-C or SIGTERM",
        cmd_serve,
    )
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        # The controller is imported by `serve` only (not to build the parser):
        # its settings.DEFAULT_LISTEN, which a test holds this help to.
        help="the HTTP listener (default [controller] listen, else 127.0.0.1:8790)",
    )
    p.add_argument(
        "--kill-listen",
        metavar="HOST:PORT",
        help="serve POST /kill on this address only (not on --listen)",
    )
    p.add_argument(
        "--notify",
        metavar="URL",
        action="append",
        default=[],
        help="send signed lifecycle events to URL (repeatable; also [controller] notify)",
    )
    p.add_argument(
        "--install-unit",
        action="store_true",
        help="write a systemd user unit that runs this controller, and exit",
    )


def _serve_args(args: argparse.Namespace) -> list[str]:
    out = []
    if args.listen:
        out += ["--listen", args.listen]
    if args.kill_listen:
        out += ["--kill-listen", args.kill_listen]
    for url in args.notify:
        out += ["--notify", url]
    return out


def cmd_serve(args: argparse.Namespace) -> int:
    from cftui.controller import settings as controller_settings
    from cftui.controller import unit
    from cftui.controller.settings import DEFAULT_LISTEN, check_url, parse_listen

    home = resolve_home(args)
    settings = controller_settings.load(home)
    listen = args.listen or settings.listen or DEFAULT_LISTEN
    parse_listen(listen)
    if args.kill_listen:
        parse_listen(args.kill_listen)
    notify = tuple(check_url(u) for u in args.notify)
    if args.install_unit:
        path = unit.install(home, _serve_args(args))
        print(f"wrote {path}")
        print(f"enable it with: systemctl --user daemon-reload && "
              f"systemctl --user enable --now {path.name}")  # fmt: skip
        return 0
    import logging  # the controller's, not every command's (8 ms of imports)

    from cftui.controller.service import ServeOptions, serve

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s cftui serve: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    options = ServeOptions(listen=listen, kill_listen=args.kill_listen, notify=notify)
    run_async(serve(home, settings, options))
    return 0
