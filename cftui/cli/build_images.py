"""`python -m cftui.cli.build_images [--rebuild] [SERVICE ...]`: build the
service images (and the base image when a shipped base cannot be pulled),
one progress line a step; what `scripts/build-images.sh` runs. Project bases
(`openclaw-base`) are built only when named, or when a bot's Dockerfile
needs one."""

from __future__ import annotations

import argparse
import sys
import time

from cftui.errors import CftuiError
from cftui.progress import ProgressEvent
from cftui.runtime.images.catalog import PROJECT_BASES, SERVICE_IMAGES
from cftui.runtime.images.services import ensure_image


def _show(event: ProgressEvent) -> None:
    step = f"{event.done:g}/{event.total:g} " if event.total else ""
    print(f"[{event.task}] {step}{event.message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build-images", description=__doc__)
    known = [*SERVICE_IMAGES, *PROJECT_BASES]
    parser.add_argument("services", nargs="*", metavar="SERVICE", help=", ".join(known))
    parser.add_argument("--rebuild", action="store_true", help="build even if up to date")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the results")
    args = parser.parse_args(argv)
    unknown = [s for s in args.services if s not in known]
    if unknown:
        print(
            f"build-images: unknown service {unknown[0]!r}: use {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    try:
        import docker

        client = docker.from_env(timeout=300)
        client.ping()
    except Exception as exc:
        print(f"build-images: the Docker engine does not answer: {exc}", file=sys.stderr)
        return 1
    progress = (lambda _e: None) if args.quiet else _show
    try:
        for service in args.services or list(SERVICE_IMAGES):
            started = time.monotonic()
            tag = ensure_image(client, service, progress, rebuild=args.rebuild)
            print(f"{service}: {tag} ({time.monotonic() - started:.1f} s)", flush=True)
    except CftuiError as exc:
        print(f"build-images: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
