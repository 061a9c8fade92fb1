"""`cf-fake-llm --listen HOST:PORT`: the fake provider as a service."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from aiohttp import web

from cfproxies.fake_llm.app import make_app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cf-fake-llm",
        description="A local fake of the Anthropic, OpenAI/OpenRouter and Gemini APIs.",
    )
    parser.add_argument(
        "--listen", default=os.environ.get("CF_LISTEN", "127.0.0.1:8080"), help="HOST:PORT"
    )
    args = parser.parse_args(argv)
    host, sep, port = args.listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        print(f"cf-fake-llm: --listen {args.listen!r}: expected HOST:PORT", file=sys.stderr)
        return 2
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    print(f"cf-fake-llm: listening on {host or '0.0.0.0'}:{port}", file=sys.stderr, flush=True)
    try:
        web.run_app(
            make_app(),
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
