"""What every command shares: one-line errors, `--home`, JSON output and a
rich progress bar for long operations."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from cftui.errors import UsageError
from cftui.inert import inert

if TYPE_CHECKING:
    # The fleet home reads fleet.toml (tomlkit, the loop disk's helpers): only
    # commands that open it pay for it, not `--version` or `--help`.
    from cftui.fleet import FleetHome
    from cftui.progress import Progress, ProgressEvent

T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, with asyncio (40 ms of imports) loaded only by the
    commands that talk to a runtime, not by `--version`, `--help` or `costs`."""
    import asyncio

    return asyncio.run(coroutine)


def add_home_option(parser: argparse.ArgumentParser, top_level: bool = False) -> None:
    parser.add_argument(
        "--home",
        metavar="PATH",
        default=None if top_level else argparse.SUPPRESS,
        help="the fleet home (default: $CLAWFACTORY_HOME or ~/.local/share/clawfactory)",
    )


def resolve_home(args: argparse.Namespace, *, create: bool = False) -> FleetHome:
    """The fleet home the command names. One named by `--home` or
    `$CLAWFACTORY_HOME` must exist (a mistyped path listed an empty fleet
    and exited 0), but for `init` (`create`), which makes it; the default
    home may be missing: a new operator has none yet."""
    from cftui.fleet import FleetHome

    given = getattr(args, "home", None)
    home = FleetHome(given)
    named = given is not None or bool(os.environ.get("CLAWFACTORY_HOME"))
    if named and not create and not home.root.is_dir():
        where = "--home" if given is not None else "CLAWFACTORY_HOME"
        raise UsageError(
            f"no fleet home at {home.root} ({where}): check the path, "
            "or make one there with `cftui init BOT`"
        )
    return home


def fail(message: str, code: int = 1) -> int:
    # Messages often quote what the agent wrote (a file name, a host): one line, inert.
    print(f"cftui: {inert(message)}", file=sys.stderr)
    return code


def warn(message: str) -> None:
    print(f"cftui: {inert(message)}", file=sys.stderr)


def print_json(value: Any) -> None:
    # json.dumps escapes every character outside printable ASCII (ensure_ascii
    # is its default): agent text in it reaches no terminal raw.
    print(json.dumps(value, indent=2, default=str))


def add_command(
    sub: argparse._SubParsersAction, name: str, help_text: str, handler: Any
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    add_home_option(parser)
    parser.set_defaults(handler=handler)
    return parser


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress]:
    """A progress callback drawn with rich.progress on stderr (if a terminal):
    one row per task. Safe from several threads at once (images build side
    by side): without a terminal each event is one whole line, never two
    threads' text mixed on one."""
    import threading

    lock = threading.Lock()
    if not enabled or not sys.stderr.isatty():

        def plain(event: ProgressEvent) -> None:
            if event.message:
                line = inert(f"{event.task}: {event.message}") + "\n"
                with lock:
                    sys.stderr.write(line)
                    sys.stderr.flush()

        yield plain
        return
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    with RichProgress(
        # Never Rich markup: a task is named like "wheels[llm]" (a markup tag,
        # which hid the extra), and build output is the agent's Dockerfile talking.
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TextColumn("{task.fields[message]}", markup=False),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(event: ProgressEvent) -> None:
            with lock:
                if event.task not in tasks:
                    tasks[event.task] = bar.add_task(event.task, total=event.total, message="")
                bar.update(
                    tasks[event.task],
                    completed=event.done,
                    total=event.total,
                    message=inert(event.message)[:60],
                )

        yield update
