"""Several service images got ready at once: what can run together does.

A fresh machine's images form a small graph: the wheels of each image that
installs the proxies (network-bound `pip wheel`), the base image (a
debootstrap, network- and disk-bound), and the service builds, each of
which needs its wheels and, when its shipped base cannot be pulled, the
base. The prerequisites start at once, side by side; each build starts as
soon as its own prerequisites are done, at most `jobs` builds at a time
(two more than the machine's CPUs unless `CFTUI_BUILD_JOBS` says
otherwise). One after another, the same work took the sum of every step.

Nothing about what is built, or how it is labelled, changes here: each
build is `services.ensure_image`, which still checks the recipe hash
first (an image already current costs one inspect) and holds the image's
file lock, so two callers of one image still build it once. A failure is
one line naming its image; the builds that do not depend on it go on.

Every function here blocks (docker SDK, subprocesses): call it in a thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cftui.errors import CftuiError, RuntimeOperationError
from cftui.progress import Progress, no_progress

JOBS_ENV = "CFTUI_BUILD_JOBS"


def default_jobs() -> int:
    """`CFTUI_BUILD_JOBS` when set to a positive number, else two more than
    the CPUs this process may run on. A legacy-builder build spends most of
    its time waiting on the engine (a container made and committed for every
    instruction, 2-3 s each even for an ENV or a LABEL), not computing: on
    two CPUs, two at a time left the demo's llm-proxy build queued behind
    fake-llm and egress for 80 s of a fresh `make demo` (bench/demo_fresh.py)."""
    raw = os.environ.get(JOBS_ENV, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, cpus) + 2


@dataclass(frozen=True)
class Step:
    """One node of the graph: `run` once every step of `needs` succeeded.
    `build` steps count against the jobs bound; prerequisites do not (they
    wait on the network, not the CPU)."""

    name: str
    run: Callable[[], Any]
    needs: tuple[str, ...] = ()
    build: bool = True


@dataclass
class Outcome:
    """What each step gave (`results`), how long it took (`seconds`), and the
    one-line reason of each that failed or could not run (`failures`)."""

    results: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


class ImagesFailed(RuntimeOperationError):
    """Some images could not be had: `failures` maps each to its one line;
    `outcome` holds the others' tags too."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.failures = dict(outcome.failures)
        own = [f"{n}: {why}" for n, why in self.failures.items() if n not in outcome.skipped]
        left = [n for n in self.failures if n in outcome.skipped]
        tail = f" (so not built: {', '.join(left)})" if left else ""
        super().__init__("; ".join(own) + tail)


def run_steps(steps: Sequence[Step], jobs: int) -> Outcome:
    """Run every step as soon as its prerequisites succeeded, at most `jobs`
    build steps at a time; a step whose prerequisite failed does not run and
    is failed naming it and its reason. Only a `CftuiError` is caught (anything else is a
    bug and propagates after the other steps finish)."""
    by_name = {s.name: s for s in steps}
    for s in steps:
        for need in s.needs:
            if need not in by_name:
                raise ValueError(f"step {s.name!r} needs an unknown step {need!r}")
    outcome = Outcome()
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(max(1, jobs))
    futures: dict[str, Future[Any]] = {}

    def run_one(step: Step) -> Any:
        for need in step.needs:
            try:
                futures[need].result()
            except CftuiError:
                with lock:
                    why = outcome.failures.get(need, "")
                    outcome.failures[step.name] = f"needs the {need}, which failed: {why}"
                    outcome.skipped.append(step.name)
                raise _Skipped() from None
        if step.build:
            slots.acquire()
        started = time.monotonic()
        try:
            result = step.run()
        except CftuiError as exc:
            with lock:
                outcome.failures[step.name] = " ".join(str(exc).split())
            raise
        finally:
            if step.build:
                slots.release()
            with lock:
                outcome.seconds[step.name] = time.monotonic() - started
        with lock:
            outcome.results[step.name] = result
        return result

    # Every step gets a thread (most of them wait); the semaphore is the bound.
    with ThreadPoolExecutor(max_workers=max(1, len(steps)), thread_name_prefix="image") as pool:
        for step in _in_dependency_order(steps):
            futures[step.name] = pool.submit(run_one, step)
    for future in futures.values():
        exc = future.exception()
        if exc is not None and not isinstance(exc, CftuiError):
            raise exc
    return outcome


class _Skipped(CftuiError):
    """A step not run because a prerequisite failed (already recorded)."""


def _in_dependency_order(steps: Sequence[Step]) -> list[Step]:
    """Prerequisites before the steps that wait on them (so every future a
    step waits on exists); a cycle is refused."""
    by_name = {s.name: s for s in steps}
    done: dict[str, Step] = {}
    visiting: set[str] = set()

    def visit(step: Step) -> None:
        if step.name in done:
            return
        if step.name in visiting:
            raise ValueError(f"steps depend on each other in a cycle through {step.name!r}")
        visiting.add(step.name)
        for need in step.needs:
            visit(by_name[need])
        visiting.discard(step.name)
        done[step.name] = step

    for s in steps:
        visit(s)
    return list(done.values())


BASE_STEP = "base image"


@dataclass(frozen=True)
class Gateway:
    """A bot's gateway image to have with the service images (its step is
    `gateway <bot>`): built on `client` when given (the start's own, which
    the kill switch can hang up on), from `code_dir`."""

    bot: str
    code_dir: Path
    client: Any = None
    nocache: bool = False

    @property
    def step(self) -> str:
        return f"gateway {self.bot}"


def ensure_images(
    client: Any,
    names: Sequence[str],
    progress: Progress = no_progress,
    *,
    rebuild: bool = False,
    jobs: int | None = None,
    gateways: Sequence[Gateway] = (),
) -> Outcome:
    """Every service image or project base in `names` ready (built where
    missing or stale), and the `gateways` (each after the one before it, so
    that two bots of one Dockerfile build it once and the second finds its
    layers cached), as many at once as the graph and `jobs` allow; the
    Outcome maps each name (and each gateway's step) to its tag. Raises
    `ImagesFailed` naming each image that could not be had, after the
    others are done."""
    from cftui.runtime.images import context, services, wheels
    from cftui.runtime.images.base_image import ensure_base_image

    steps: list[Step] = []
    extras: set[str] = set()
    wants_base = False
    for name in dict.fromkeys(names):
        needs: list[str] = []
        try:
            if rebuild or not services.image_current(client, name):
                extra = services.wheel_extra(name)
                if extra is not None:
                    needs.append(f"wheels[{extra}]")
                    extras.add(extra)
                if services.needs_fallback_base(client, name, progress):
                    needs.append(BASE_STEP)
                    wants_base = True
        except CftuiError as exc:
            # Its Dockerfile cannot be read: that image fails, the others go on.
            steps.append(Step(name, _raise(exc)))
            continue
        steps.append(Step(name, _ensure(client, name, progress, rebuild), tuple(needs)))
    before: tuple[str, ...] = ()
    for gw in gateways:
        try:
            text = context.read_dockerfile(gw.code_dir).decode("utf-8", errors="replace")
            base = services.default_base_missing(
                client, text, f"{gw.code_dir}/Dockerfile", progress
            )
        except CftuiError as exc:
            steps.append(Step(gw.step, _raise(exc), before))
        else:
            wants_base = wants_base or base
            after = (*before, BASE_STEP) if base else before
            steps.append(Step(gw.step, _gateway(client, gw, progress), after))
        before = (gw.step,)
    if wants_base:
        steps.append(Step(BASE_STEP, lambda: ensure_base_image(client, progress), build=False))
    for extra in sorted(extras):
        steps.append(
            Step(f"wheels[{extra}]", _fetch(wheels.fetch_wheels, extra, progress), build=False)
        )
    outcome = run_steps(steps, jobs or default_jobs())
    if outcome.failures:
        raise ImagesFailed(outcome)
    return outcome


def _gateway(client: Any, gw: Gateway, progress: Progress) -> Callable[[], str]:
    from cftui.runtime.images.gateway import build_gateway_image

    return lambda: build_gateway_image(
        gw.client or client, gw.bot, gw.code_dir, progress, nocache=gw.nocache
    )


def _raise(exc: CftuiError) -> Callable[[], None]:
    def fail() -> None:
        raise exc

    return fail


def _ensure(client: Any, name: str, progress: Progress, rebuild: bool) -> Callable[[], str]:
    from cftui.runtime.images.services import ensure_image

    return lambda: ensure_image(client, name, progress, rebuild=rebuild)


def _fetch(
    fetch: Callable[[str, Progress], None], extra: str, progress: Progress
) -> Callable[[], None]:
    return lambda: fetch(extra, progress)
