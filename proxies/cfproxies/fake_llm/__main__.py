"""`cf-fake-llm --listen HOST:PORT`: the fake provider as a service."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from aiohttp import web

from cfproxies.cli import OneLineParser
from cfproxies.fake_llm.app import make_app


def _env_int(name: str, default: int) -> int:
    """A numeric default from the environment; -1 (refused below) if not a number."""
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        return -1


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(
        prog="cf-fake-llm",
        description="A local fake of the Anthropic, OpenAI/OpenRouter and Gemini APIs.",
    )
    parser.add_argument(
        "--listen", default=os.environ.get("CF_LISTEN", "127.0.0.1:8080"), help="HOST:PORT"
    )
    parser.add_argument(
        "--chunks",
        type=int,
        default=_env_int("CF_FAKE_CHUNKS", 4),
        help="pieces a streamed reply comes in, unless x-fake-chunks says (CF_FAKE_CHUNKS)",
    )
    parser.add_argument(
        "--chunk-gap-ms",
        type=int,
        default=_env_int("CF_FAKE_CHUNK_GAP_MS", 0),
        help="pause between pieces, unless x-fake-chunk-gap-ms says (CF_FAKE_CHUNK_GAP_MS)",
    )
    args = parser.parse_args(argv)
    if args.chunks < 1 or args.chunk_gap_ms < 0:
        print(
            "cf-fake-llm: --chunks (CF_FAKE_CHUNKS) must be a number from 1 and"
            " --chunk-gap-ms (CF_FAKE_CHUNK_GAP_MS) one from 0",
            file=sys.stderr,
        )
        return 2
    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        print(f"cf-fake-llm: --listen {args.listen!r}: expected HOST:PORT", file=sys.stderr)
        return 2
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    print(f"cf-fake-llm: listening on {host or '0.0.0.0'}:{port}", file=sys.stderr, flush=True)
    try:
        web.run_app(
            make_app(args.chunks, args.chunk_gap_ms),
            host=host.strip("[]") or "0.0.0.0",
            port=int(port),
            loop=loop,
            handler_cancellation=True,
            access_log=None,
            print=None,
        )
    except OSError as exc:
        print(
            f"cf-fake-llm: cannot listen on {args.listen}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
