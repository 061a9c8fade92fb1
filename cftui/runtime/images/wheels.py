"""The Python wheels a service image installs with `pip install --no-index`:
fetched on the host (`pip wheel`, cached under the cache dir), so no build
step needs the network."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from cftui.errors import RuntimeOperationError
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime.images.cache import cache_dir, file_lock
from cftui.runtime.images.catalog import source_root
from cftui.runtime.images.commands import run_logged
from cftui.runtime.images.hashing import paths_hash

IMAGE_PYTHON = (3, 11)  # python:3.11-slim and Debian bookworm alike


def _pip(args: list[str], *, task: str, progress: Progress, what: str) -> None:
    run_logged(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        task=task,
        progress=progress,
        what=what,
    )


def _copy_proxies_source(root: Path, dest: Path) -> Path:
    """A clean copy of proxies/, so building its wheel leaves no build/ in the repo."""
    src = root / "proxies"
    out = dest / "proxies-src"
    shutil.copytree(
        src,
        out,
        ignore=shutil.ignore_patterns(
            "*.egg-info", "build", "dist", "__pycache__", "*.pyc", ".pytest_cache"
        ),
    )
    return out


def _check_python() -> None:
    if sys.version_info[:2] != IMAGE_PYTHON:
        # Binary wheels (aiohttp, mitmproxy_rs...) are chosen for the host's
        # Python; both bases run 3.11, so other hosts' wheels cannot install.
        want = ".".join(map(str, IMAGE_PYTHON))
        raise RuntimeOperationError(
            f"building the service images needs cftui on Python {want} (the images' Python), "
            f"not {sys.version_info.major}.{sys.version_info.minor}"
        )


def _cached(root: Path, extra: str) -> Path:
    """Where the third-party wheels of `extra` are cached: keyed by
    (extra, proxies/pyproject.toml, Python)."""
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    key = paths_hash(root / "proxies" / "pyproject.toml", salt=f"{extra}-{py}")
    return cache_dir() / "wheels" / f"{extra}-{py}-{key}"


def _fill_cache(cached: Path, src: Path, extra: str, progress: Progress, task: str) -> None:
    """Fetch the wheels of `src[extra]` into `cached` unless complete there
    (the caller holds the extra's lock)."""
    if (cached / ".complete").exists():
        return
    progress(ProgressEvent(task, message=f"fetching wheels into {cached}"))
    shutil.rmtree(cached, ignore_errors=True)
    cached.mkdir(parents=True)
    _pip(
        ["wheel", "--wheel-dir", str(cached), f"{src}[{extra}]"],
        task=task,
        progress=progress,
        what=f"fetching wheels for clawfactory-proxies[{extra}] (pip wheel)",
    )
    (cached / ".complete").write_text("ok\n")
    for stale in cached.parent.glob(f"{cached.name.rsplit('-', 1)[0]}-*"):
        if stale != cached:  # wheels for an older pyproject.toml
            shutil.rmtree(stale, ignore_errors=True)


def fetch_wheels(extra: str, progress: Progress = no_progress) -> None:
    """The third-party wheels of `clawfactory-proxies[extra]` in the cache,
    fetched now if they are not: what `wheelhouse` would fetch, done ahead
    (beside other downloads) so that the build finds them there."""
    _check_python()
    root = source_root()
    task = f"wheels[{extra}]"
    cached = _cached(root, extra)
    with file_lock(f"wheels-{extra}", progress, task):
        if (cached / ".complete").exists():
            return
        with tempfile.TemporaryDirectory(prefix="cf-proxies-", dir=cache_dir()) as tmp:
            _fill_cache(cached, _copy_proxies_source(root, Path(tmp)), extra, progress, task)


def wheelhouse(extra: str, dest: Path, progress: Progress = no_progress) -> None:
    """Fill `dest/deps` with the wheels `clawfactory-proxies[extra]` depends
    on and `dest/own` with the project's own wheel.

    Third-party wheels are cached per (extra, proxies/pyproject.toml, Python)
    under the cache dir; the project's own wheel is built fresh each time.
    """
    _check_python()
    root = source_root()
    task = f"wheels[{extra}]"
    cached = _cached(root, extra)
    with tempfile.TemporaryDirectory(prefix="cf-proxies-", dir=cache_dir()) as tmp:
        src = _copy_proxies_source(root, Path(tmp))
        with file_lock(f"wheels-{extra}", progress, task):
            _fill_cache(cached, src, extra, progress, task)
            # deps/ and own/ are separate layers in the Dockerfiles: a change
            # to the proxies' code reinstalls one wheel, not mitmproxy's forty.
            # Copied under the lock, which guards the cache's pruning too.
            (dest / "deps").mkdir(parents=True, exist_ok=True)
            for whl in cached.glob("*.whl"):
                if not whl.name.startswith("clawfactory_proxies-"):
                    shutil.copy2(whl, dest / "deps" / whl.name)
        own = Path(tmp) / "own"
        _pip(
            ["wheel", "--no-deps", "--wheel-dir", str(own), str(src)],
            task=task,
            progress=progress,
            what="building the clawfactory-proxies wheel (pip wheel --no-deps)",
        )
        (dest / "own").mkdir(parents=True, exist_ok=True)
        for whl in own.glob("*.whl"):
            shutil.copy2(whl, dest / "own" / whl.name)
