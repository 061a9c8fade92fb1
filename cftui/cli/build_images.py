"""`python -m cftui.cli.build_images [--rebuild] [--jobs N] [SERVICE ...]`:
build the service images (and the base image when a shipped base cannot be
pulled), side by side where they do not depend on each other
(`cftui.runtime.images.batch`): on a terminal one progress row per image,
otherwise one line per step, each naming its image; then one line per image
(its tag and seconds, or why it failed). What `scripts/build-images.sh` runs.
Project bases (`openclaw-base`) are built only when named, or when a bot's
Dockerfile needs one."""

from __future__ import annotations

import argparse
import contextlib
import sys

from cftui.cli.common import progress_bar
from cftui.errors import CftuiError
from cftui.runtime.images.batch import JOBS_ENV, ImagesFailed, default_jobs, ensure_images
from cftui.runtime.images.catalog import PROJECT_BASES, SERVICE_IMAGES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build-images", description=__doc__)
    known = [*SERVICE_IMAGES, *PROJECT_BASES]
    parser.add_argument("services", nargs="*", metavar="SERVICE", help=", ".join(known))
    parser.add_argument("--rebuild", action="store_true", help="build even if up to date")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the results")
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        metavar="N",
        help=f"builds at a time (default: ${JOBS_ENV}, else the CPUs: {default_jobs()})",
    )
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        print("build-images: --jobs must be at least 1", file=sys.stderr)
        return 2
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
    names = args.services or list(SERVICE_IMAGES)
    bar = contextlib.nullcontext(lambda _e: None) if args.quiet else progress_bar()
    try:
        with bar as progress:
            outcome = ensure_images(client, names, progress, rebuild=args.rebuild, jobs=args.jobs)
    except ImagesFailed as exc:
        for name, why in exc.failures.items():
            print(f"build-images: {name}: {why}", file=sys.stderr)
        return exc.exit_code
    except CftuiError as exc:
        print(f"build-images: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        client.close()
    for name in names:
        print(f"{name}: {outcome.results[name]} ({outcome.seconds[name]:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
