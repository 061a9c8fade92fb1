"""`cftui init`, `cftui list`, `cftui status`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cftui.cli.common import add_command, print_json, resolve_home, run_async, warn
from cftui.errors import UsageError
from cftui.humanize import format_uptime
from cftui.inert import inert

if TYPE_CHECKING:
    from cftui.fleet import BotConfig, FleetHome
    from cftui.runtime.status import BotStatus


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "init", "create a bot: directories, secrets, snapshot key, fleet entry", cmd_init
    )
    p.add_argument("bot")
    # init_bot checks it against fleet.RUNTIMES (not imported to build the parser).
    p.add_argument("--runtime", default="docker", help="docker (the default) or lima")
    p.add_argument("--code", metavar="PATH_OR_GIT_URL", help="gateway source (default: OpenClaw)")
    p.add_argument(
        "--host", metavar="NAME", default="local", help="its Docker host (see `cftui hosts`)"
    )

    p = add_command(
        sub,
        "delete",
        "remove a bot: its stack, disk, code/ and state/ (snapshots stay)",
        cmd_delete,
    )
    p.add_argument("bot")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help='{"bot", "kept": [PATH, ...]}')

    p = add_command(sub, "list", "the fleet, one row a bot", cmd_list)
    p.add_argument("--json", action="store_true")

    p = add_command(
        sub, "status", "a bot's services (or the fleet's), with state and uptime", cmd_status
    )
    p.add_argument("bot", nargs="?")
    p.add_argument("--json", action="store_true")


def cmd_init(args: argparse.Namespace) -> int:
    from cftui.botinit import init_bot

    home = resolve_home(args, create=True)
    result = init_bot(home, args.bot, runtime=args.runtime, code=args.code, host=args.host)
    bot = result.bot
    where = f", on host {bot.host}" if bot.host != "local" else ""
    print(f"created {bot.name} ({bot.runtime}, {bot.gateway} gateway{where}) in {home.root}")
    print(f"  snapshot recipient: {result.recipient}")
    print(f"  provider keys go in {home.providers_env(bot.name)} (read by the LLM proxy only)")
    print(f"  start it with: cftui start {bot.name}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from cftui.lifecycle import delete
    from cftui.runtime import Runtimes

    home = resolve_home(args)
    bot = home.bot(args.bot)
    if not args.yes:
        raise UsageError(
            f"delete removes {bot.name}'s stack, code/ and state/ for good "
            "(its snapshots, secrets and audit stay): add --yes"
        )

    async def go() -> list:
        runtimes = Runtimes(home)
        try:
            return await delete(home, bot, runtimes)
        finally:
            await runtimes.aclose()

    kept = run_async(go())
    if args.json:
        print_json({"bot": bot.name, "kept": [str(p) for p in kept]})
        return 0
    print(f"deleted {bot.name}")
    for path in kept:
        print(f"  kept {path}")
    return 0


def _statuses(
    home: FleetHome, bots: list[BotConfig], *, brief: bool = False
) -> dict[str, BotStatus]:
    """`brief`: for a table of each bot's state and uptime alone (`list`)."""
    from cftui.fleet_view import read_now

    # This machine's docker bots: the engine's socket, no SDK, no event loop.
    got = read_now(home, bots, brief=brief)
    if got is None:
        got = _statuses_of_every_runtime(home, bots)
    statuses, errors = got
    for err in errors:
        warn(f"{err} (showing the bots from fleet.toml without live state)")
    return statuses


def _statuses_of_every_runtime(
    home: FleetHome, bots: list[BotConfig]
) -> tuple[dict[str, BotStatus], list[str]]:
    """Lima bots, other hosts' bots, a DOCKER_HOST that is no unix socket."""
    from cftui.lifecycle import fleet_status
    from cftui.runtime import Runtimes

    async def go() -> tuple[dict[str, BotStatus], list[str]]:
        runtimes = Runtimes(home)
        try:
            return await fleet_status(home, bots, runtimes)
        finally:
            await runtimes.aclose()

    return run_async(go())


def _status_json(bot: BotConfig, st: BotStatus) -> dict:
    return {
        "bot": bot.name,
        "runtime": bot.runtime,
        "host": bot.host,
        "gateway": bot.gateway,
        "gateway_port": bot.gateway_port,
        "capture": bot.capture,
        "state": st.state,
        "locked": st.locked,
        "uptime_s": st.uptime_seconds(),
        "error": st.error,
        "disk": st.disk.to_json() if st.disk else None,
        "services": {
            name: {
                "state": s.state,
                "health": s.health,
                "started_at": s.started_at.isoformat() if s.started_at else None,
                "uptime_s": s.uptime_seconds(),
                "image": s.image,
                "detail": s.detail,
            }
            for name, s in st.services.items()
        },
    }


def cmd_list(args: argparse.Namespace) -> int:
    home = resolve_home(args)
    bots = list(home.bots().values())
    if not bots:
        print(f"no bots in {home.root} (create one with `cftui init NAME`)")
        return 0
    statuses = _statuses(home, bots, brief=not args.json)
    if args.json:
        print_json([_status_json(b, statuses[b.name]) for b in bots])
        return 0
    rows = [("BOT", "RUNTIME", "HOST", "STATE", "UPTIME", "PORT", "CAPTURE")]
    for b in bots:
        st = statuses[b.name]
        rows.append(
            (
                b.name,
                b.runtime,
                b.host,
                st.state,
                format_uptime(st.uptime_seconds()),
                str(b.gateway_port),
                "on" if b.capture else "off",
            )
        )
    _print_table(rows)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    home = resolve_home(args)
    bots = [home.bot(args.bot)] if args.bot else list(home.bots().values())
    statuses = _statuses(home, bots)
    if args.json:
        data = [_status_json(b, statuses[b.name]) for b in bots]
        print_json(data[0] if args.bot else data)
        return 0
    for b in bots:
        st = statuses[b.name]
        lock = "  LOCKED (cftui unlock " + b.name + ")" if st.locked else ""
        print(
            inert(
                f"{b.name}  {b.runtime}  {st.state}  "
                f"uptime {format_uptime(st.uptime_seconds())}{lock}"
            )
        )
        if st.disk is not None:
            print(inert(f"  disk  {st.disk.line()}"))
        if st.error:
            continue
        rows = [("  SERVICE", "STATE", "HEALTH", "UPTIME", "IMAGE")]
        for name, s in st.services.items():
            rows.append(
                (
                    f"  {name}",
                    s.state,
                    s.health or "-",
                    format_uptime(s.uptime_seconds()),
                    s.image or "-",
                )
            )
        _print_table(rows)
    return 0


def _print_table(rows: Sequence[tuple[str, ...]]) -> None:
    rows = [tuple(inert(c) for c in r) for r in rows]  # states and images come from the engine
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
