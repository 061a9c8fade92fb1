"""The images a bot's stack runs: built here, from the repository's sources,
only when missing or when their sources changed.

Every image carries a label with a content hash of what it was built from;
a matching label means nothing to do, so a fleet start with images cached
costs one `inspect` per image. Shipped Dockerfiles start `FROM ${BASE_IMAGE}`
with a public default (`python:3.11-slim`, `nginx:1.27-bookworm`); when that
image is neither here nor pullable (no registry: the pull fails at once), the
build falls back to `clawfactory/base:bookworm`, which this module makes from
Debian packages (`images/base/mkrootfs.sh`, then `docker import`). Python
packages are fetched on the host (`pip wheel`, cached under
`$XDG_CACHE_HOME/clawfactory/wheels`) and installed in the image with
`pip install --no-index`, so no build step needs the network.

Every function here blocks (docker SDK, subprocesses): call it in a thread.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cftui.errors import RuntimeOperationError
from cftui.fleet import validate_bot_name
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime import build_context, dockerfile

SERVICE_IMAGES = {
    "front": "clawfactory/front",
    "llm-proxy": "clawfactory/llm-proxy",
    "egress": "clawfactory/mitm",
    "fake-llm": "clawfactory/fake-llm",
    "demo-agent": "clawfactory/demo-agent",
}
# Bases built from the project's own Dockerfiles, on demand: when a bot's
# Dockerfile names one in a FROM. They are the only builds of a gateway's
# chain that get a network (npm), and only the project writes them.
PROJECT_BASES = {
    "openclaw-base": "clawfactory/openclaw-base",
}
BASE_IMAGE = "clawfactory/base:bookworm"
TAG = "latest"

# One label set by the build (the classic builder turns each label into a
# step of its own, seconds each on fuse-overlayfs); the service name is a
# LABEL in each Dockerfile.
HASH_LABEL = "io.clawfactory.context-hash"
SERVICE_LABEL = "io.clawfactory.image"
# Which bot a gateway image was built for; inherited by any image built FROM it.
GATEWAY_LABEL = "io.clawfactory.gateway"

# Bump when the way images are assembled changes, so that every image is
# rebuilt once even though its sources did not change.
_RECIPE = "2"

REPO_ROOT = Path(__file__).resolve().parents[2]
_IGNORED_PARTS = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", "node_modules"}
_IGNORED_SUFFIXES = (".pyc", ".pyo")
_STEP_RE = re.compile(r"^Step (\d+)/(\d+) :")
_PULL_RETRY_S = 600.0
# Each RUN of a gateway build gets no more than this (the classic builder's
# per-step limits; no pids limit exists there).
GATEWAY_BUILD_LIMITS = {"memory": 2 << 30, "memswap": 2 << 30, "cpushares": 512}
IMAGE_PYTHON = (3, 11)  # python:3.11-slim and Debian bookworm alike


@dataclass(frozen=True)
class ServiceSource:
    """Where a service image is built from: its context, and the extra of
    `clawfactory-proxies` it installs from wheels (None: no wheels)."""

    context: Path
    extra: str | None


def source_root() -> Path:
    """The checkout whose `images/` and `proxies/` the images are built from.

    `CLAWFACTORY_SOURCE` overrides it (an installed cftui has no `images/`).
    """
    root = Path(os.environ.get("CLAWFACTORY_SOURCE") or REPO_ROOT)
    if not (root / "images").is_dir() or not (root / "proxies" / "pyproject.toml").is_file():
        raise RuntimeOperationError(
            f"cannot build images: no images/ and proxies/ under {root} "
            "(set CLAWFACTORY_SOURCE to a ClawFactory checkout)"
        )
    return root


def service_sources(root: Path | None = None) -> dict[str, ServiceSource]:
    root = root or source_root()
    return {
        "front": ServiceSource(root / "images" / "front", None),
        "llm-proxy": ServiceSource(root / "images" / "llm-proxy", "llm"),
        "egress": ServiceSource(root / "images" / "egress", "egress"),
        "fake-llm": ServiceSource(root / "images" / "fake-llm", "fake"),
        "demo-agent": ServiceSource(root / "cftui" / "templates" / "demo-agent", None),
        "openclaw-base": ServiceSource(root / "images" / "openclaw-base", None),
    }


def _project_image(service: str) -> str | None:
    return SERVICE_IMAGES.get(service) or PROJECT_BASES.get(service)


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/clawfactory` (default `~/.cache/clawfactory`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "clawfactory"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _file_lock(name: str, progress: Progress, task: str) -> Iterator[None]:
    """An exclusive lock shared by every process and thread on this machine.

    flock locks belong to an open file description, so two threads of one
    process, each opening the file, exclude each other as two processes do.
    """
    locks = cache_dir() / "locks"
    locks.mkdir(exist_ok=True)
    with open(locks / f"{name}.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(ProgressEvent(task, message="waiting for another build of the same image"))
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- content hashes ---------------------------------------------------------


def _files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_PARTS)
        dirnames[:] = [d for d in dirnames if not d.endswith(".egg-info")]
        for name in sorted(filenames):
            if not name.endswith(_IGNORED_SUFFIXES):
                yield Path(dirpath) / name


def tree_hash(*roots: Path, salt: str = "") -> str:
    """A hash of every file's relative path, exec bit and bytes under roots."""
    h = hashlib.sha256(f"{_RECIPE}\0{salt}\0".encode())
    for root in roots:
        root = root.resolve()
        h.update(f"root\0{root.name}\0".encode())
        for path in _files(root):
            try:
                data = path.read_bytes()
                mode = path.stat().st_mode
            except OSError:
                continue  # vanished or unreadable: the build itself will say
            rel = path.relative_to(root).as_posix()
            h.update(f"{rel}\0{mode & 0o111:o}\0{len(data)}\0".encode())
            h.update(data)
    return h.hexdigest()[:24]


def _proxies_roots(root: Path) -> list[Path]:
    proxies = root / "proxies"
    return [proxies / "pyproject.toml", proxies / "cfproxies"]


def _service_hash(source: ServiceSource, root: Path) -> str:
    roots = [source.context]
    if source.extra:
        roots += _proxies_roots(root)
    return tree_hash(*roots, salt=f"extra={source.extra}")


def _hash_file_or_tree(*paths: Path, salt: str = "") -> str:
    """A hash of some files (and directories, via tree_hash)."""
    h = hashlib.sha256(f"{_RECIPE}\0{salt}\0".encode())
    for p in paths:
        if p.is_dir():
            h.update(tree_hash(p).encode())
        else:
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:24]


# --- docker helpers ---------------------------------------------------------


def _image_attrs(client: Any, ref: str) -> dict[str, Any] | None:
    """A local image's inspect data, or None when it is not here."""
    import docker.errors
    import requests

    try:
        return dict(client.images.get(ref).attrs)
    except docker.errors.ImageNotFound:
        return None
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise RuntimeOperationError(f"cannot inspect image {ref}: {_explain(exc)}") from None


def _image_labels(client: Any, ref: str) -> dict[str, str] | None:
    """The labels of a local image, or None when it is not here."""
    attrs = _image_attrs(client, ref)
    return None if attrs is None else dict((attrs.get("Config") or {}).get("Labels") or {})


_unpullable: dict[str, float] = {}
_unpullable_lock = threading.Lock()


def image_available(client: Any, ref: str, progress: Progress = no_progress) -> bool:
    """Whether `ref` is here, pulling it if a registry answers.

    With no registry the pull fails at once; the failure is remembered for a
    while so that ten bots starting together do not each try again.
    """
    import docker.errors
    import requests
    from docker.utils import parse_repository_tag

    if _image_labels(client, ref) is not None:
        return True
    with _unpullable_lock:
        failed_at = _unpullable.get(ref)
    if failed_at is not None and time.monotonic() - failed_at < _PULL_RETRY_S:
        return False
    repo, tag = parse_repository_tag(ref)
    progress(ProgressEvent("pull", message=f"pulling {ref}"))
    try:
        client.api.pull(repo, tag=tag or "latest")
    except (docker.errors.DockerException, requests.RequestException) as exc:
        progress(ProgressEvent("pull", message=f"cannot pull {ref}: {_explain(exc)}"))
        with _unpullable_lock:
            _unpullable[ref] = time.monotonic()
        return False
    return True


def _explain(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return " ".join(str(text).split())


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _docker_build(
    client: Any,
    context: Path | IO[bytes],
    tag: str,
    *,
    task: str,
    progress: Progress,
    buildargs: dict[str, str],
    labels: dict[str, str],
    nocache: bool = False,
    contained: bool = False,
) -> str:
    """Run one classic-builder build, reporting each log line; the image id.

    `context` is a directory, or a ready tar. `contained`: the build of a
    Dockerfile the agent wrote: no network for its RUN steps, and bounded.
    """
    import docker.errors
    import requests

    last = ""
    image_id = None
    where: dict[str, Any] = (
        {"path": str(context)}
        if isinstance(context, Path)
        else {"fileobj": context, "custom_context": True}
    )
    if contained:
        where.update(network_mode="none", container_limits=dict(GATEWAY_BUILD_LIMITS))
    try:
        stream = client.api.build(
            **where,
            tag=tag,
            buildargs=buildargs,
            labels=labels,
            decode=True,
            rm=True,
            forcerm=True,
            pull=False,
            nocache=nocache,
        )
        for chunk in stream:
            if "error" in chunk:
                error = _one_line(str(chunk["error"]))
                where = f" (after: {last})" if last and last not in error else ""
                raise RuntimeOperationError(f"building {tag} failed: {error}{where}")
            text = chunk.get("stream")
            if text:
                for line in text.splitlines():
                    line = line.rstrip()
                    if not line:
                        continue
                    last = _one_line(line, 200)
                    step = _STEP_RE.match(line)
                    if step:
                        done, total = int(step[1]) - 1, int(step[2])
                        progress(ProgressEvent(task, done, total, line))
                    else:
                        progress(ProgressEvent(task, message=line))
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
    except docker.errors.APIError as exc:
        raise RuntimeOperationError(f"building {tag} failed: {_explain(exc)}") from None
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise RuntimeOperationError(f"building {tag} failed: {_one_line(str(exc))}") from None
    if image_id is None:
        try:
            image_id = client.images.get(tag).id
        except docker.errors.DockerException:
            raise RuntimeOperationError(
                f"building {tag} failed: no image was produced (last output: {last or 'none'})"
            ) from None
    progress(ProgressEvent(task, 1, 1, f"built {tag}"))
    return image_id


# --- the base image ---------------------------------------------------------


def base_image_hash(root: Path | None = None) -> str:
    base = (root or source_root()) / "images" / "base"
    return _hash_file_or_tree(base / "mkrootfs.sh", base / "packages.txt", salt="base")


def ensure_base_image(client: Any, progress: Progress = no_progress) -> str:
    """`clawfactory/base:bookworm`, made from Debian packages if missing.

    Safe when several processes ask at once: one builds, the others wait on
    a file lock and then find the image there.
    """
    root = source_root()
    want = base_image_hash(root)
    labels = _image_labels(client, BASE_IMAGE)
    if labels is not None and labels.get(HASH_LABEL) == want:
        return BASE_IMAGE
    task = "base image"
    with _file_lock("base-bookworm", progress, task):
        labels = _image_labels(client, BASE_IMAGE)
        if labels is not None and labels.get(HASH_LABEL) == want:
            return BASE_IMAGE
        _build_base(client, root, want, progress, task)
    return BASE_IMAGE


def _run_logged(cmd: list[str], *, task: str, progress: Progress, what: str, **kw: Any) -> None:
    """Run a command, its output lines as progress; a one-line error naming `what`."""
    last: list[str] = []
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            **kw,
        )
    except OSError as exc:
        raise RuntimeOperationError(f"{what} failed: cannot run {cmd[0]}: {exc.strerror}") from None
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            last = [*last[-4:], line]
            progress(ProgressEvent(task, message=line))
    if proc.wait() != 0:
        tail = _one_line(last[-1]) if last else f"exit {proc.returncode}"
        raise RuntimeOperationError(f"{what} failed: {tail}")


def _build_base(client: Any, root: Path, want: str, progress: Progress, task: str) -> None:
    import docker.errors
    import requests

    if os.geteuid() != 0:
        raise RuntimeOperationError(
            f"building {BASE_IMAGE} needs root (debootstrap): run "
            f"`sudo {root / 'scripts' / 'build-images.sh'}` once"
        )
    if shutil.which("debootstrap") is None:
        raise RuntimeOperationError(
            f"building {BASE_IMAGE} needs debootstrap: apt-get install debootstrap"
        )
    script = root / "images" / "base" / "mkrootfs.sh"
    mirror = os.environ.get("CLAWFACTORY_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    work = Path(tempfile.mkdtemp(prefix="base-rootfs-", dir=cache_dir()))
    rootfs = work / "rootfs"
    try:
        progress(ProgressEvent(task, 0, 2, f"debootstrap bookworm into {rootfs}"))
        _run_logged(
            ["bash", str(script), str(rootfs), mirror],
            task=task,
            progress=progress,
            what=f"building {BASE_IMAGE} (debootstrap)",
        )
        progress(ProgressEvent(task, 1, 2, f"docker import {BASE_IMAGE}"))
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            'CMD ["python3"]',
            f"LABEL {HASH_LABEL}={want} {SERVICE_LABEL}=base",
        ]
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", "-", "."],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert tar.stdout is not None
        repo, tag = BASE_IMAGE.split(":")
        # The engine answers only once the import is done: minutes on a slow
        # disk, past the client's usual timeout (harmless for other callers
        # meanwhile: theirs only grows).
        saved_timeout = client.api.timeout
        client.api.timeout = max(saved_timeout or 0, 1800)
        try:
            client.api.import_image(
                src=tar.stdout, repository=repo, tag=tag, changes=changes, stream_src=True
            )
        except (docker.errors.DockerException, requests.RequestException) as exc:
            tar.kill()
            raise RuntimeOperationError(
                f"building {BASE_IMAGE} failed at docker import: {_explain(exc)}"
            ) from None
        finally:
            client.api.timeout = saved_timeout
            tar.stdout.close()
            err = tar.stderr.read().decode(errors="replace") if tar.stderr else ""
            tar.wait()
        if tar.returncode != 0:
            raise RuntimeOperationError(
                f"building {BASE_IMAGE} failed at tar: {_one_line(err) or tar.returncode}"
            )
        labels = _image_labels(client, BASE_IMAGE)
        if labels is None or labels.get(HASH_LABEL) != want:
            raise RuntimeOperationError(f"building {BASE_IMAGE} failed: import produced no image")
        progress(ProgressEvent(task, 2, 2, f"built {BASE_IMAGE}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- wheels -----------------------------------------------------------------


def _pip(args: list[str], *, task: str, progress: Progress, what: str) -> None:
    _run_logged(
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


def wheelhouse(extra: str, dest: Path, progress: Progress = no_progress) -> None:
    """Fill `dest/deps` with the wheels `clawfactory-proxies[extra]` depends
    on and `dest/own` with the project's own wheel.

    Third-party wheels are cached per (extra, proxies/pyproject.toml, Python)
    under the cache dir; the project's own wheel is built fresh each time.
    """
    if sys.version_info[:2] != IMAGE_PYTHON:
        # Binary wheels (aiohttp, mitmproxy_rs...) are chosen for the host's
        # Python; both bases run 3.11, so other hosts' wheels cannot install.
        want = ".".join(map(str, IMAGE_PYTHON))
        raise RuntimeOperationError(
            f"building the service images needs cftui on Python {want} (the images' Python), "
            f"not {sys.version_info.major}.{sys.version_info.minor}"
        )
    root = source_root()
    task = f"wheels[{extra}]"
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    key = _hash_file_or_tree(root / "proxies" / "pyproject.toml", salt=f"{extra}-{py}")
    cached = cache_dir() / "wheels" / f"{extra}-{py}-{key}"
    with tempfile.TemporaryDirectory(prefix="cf-proxies-", dir=cache_dir()) as tmp:
        src = _copy_proxies_source(root, Path(tmp))
        with _file_lock(f"wheels-{extra}", progress, task):
            if not (cached / ".complete").exists():
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
                for stale in cached.parent.glob(f"{extra}-{py}-*"):
                    if stale != cached:  # wheels for an older pyproject.toml
                        shutil.rmtree(stale, ignore_errors=True)
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


# --- service and gateway images -----------------------------------------------


def _parse(text: str, what: str) -> tuple[list[dockerfile.Instruction], str]:
    try:
        return dockerfile.parse(text)
    except dockerfile.DockerfileError as exc:
        raise RuntimeOperationError(f"{what}: {exc}") from None


def dockerfile_base_default(path: Path) -> tuple[bool, str | None]:
    """(declares ARG BASE_IMAGE, its default) for a Dockerfile."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return dockerfile.base_arg_default(_parse(text, str(path))[0])


def _inert(text: str, limit: int = 120) -> str:
    """Agent-written text made safe for one line of an error message."""
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _refuse_remote_sources(found: list[dockerfile.RemoteSource], where: str, what: str) -> None:
    if not found:
        return
    first = found[0]
    line = f" line {first.line}" if first.line else ""
    raise RuntimeOperationError(
        f"cannot build {what}: {where}{line}: ADD from {first.why} ({_inert(first.source)}) "
        "is refused (dockerd would fetch it on the host's network); put the file in "
        "code/ and COPY it"
    )


def _refuse_foreign_images(
    client: Any, bot: str, instructions: list[dockerfile.Instruction], buildargs: dict[str, str]
) -> None:
    """A gateway's build reads no image of another bot's gateway (FROM or
    COPY --from): those hold that bot's code/ as it was built. An image
    named with a variable cftui cannot resolve is refused for the same
    reason: it cannot be checked."""
    what = f"the gateway of {bot}"
    own = gateway_image_name(bot)
    for ref in dockerfile.image_refs(instructions, buildargs):
        where = f"cannot build {what}: code/Dockerfile line {ref.line}: {ref.how} {_inert(ref.ref)}"
        if ref.unresolved:
            raise RuntimeOperationError(
                f"{where} names its image with a variable cftui cannot resolve: "
                "give it a default (`ARG NAME=image`) or write the image name"
            )
        attrs = _image_attrs(client, ref.ref)
        if attrs is None:
            continue
        owner = ((attrs.get("Config") or {}).get("Labels") or {}).get(GATEWAY_LABEL)
        tags = attrs.get("RepoTags") or []
        foreign_tag = any(t.startswith("clawfactory/gateway-") and t != own for t in tags)
        if (owner and owner != bot) or foreign_tag:
            raise RuntimeOperationError(
                f"{where} is another bot's gateway image: refused (it holds that bot's code/)"
            )


def _project_base_service(ref: str) -> str | None:
    """The PROJECT_BASES entry a FROM reference names, if any."""
    name, _, tag = ref.partition(":")
    for service, image in PROJECT_BASES.items():
        if name == image and tag in ("", TAG):
            return service
    return None


def _choose_base(
    client: Any,
    instructions: list[dockerfile.Instruction],
    progress: Progress,
    task: str,
    what: str,
    *,
    check_onbuild: bool = False,
) -> dict[str, str]:
    """Build args that make the build possible here: {} when every FROM image
    is available, BASE_IMAGE=clawfactory/base:bookworm when the default base
    is not; a clear error when a needed image cannot be had. A project base
    (PROJECT_BASES) is built from images/ first. `check_onbuild`: refuse a
    base whose ONBUILD triggers would fetch from a URL."""
    declares, default = dockerfile.base_arg_default(instructions)
    buildargs: dict[str, str] = {}
    for ref in dockerfile.from_images(instructions, default):
        project = _project_base_service(ref)
        if project is not None:
            ensure_image(client, project, progress)
        elif image_available(client, ref, progress):
            pass
        elif declares and ref == default:
            progress(
                ProgressEvent(task, message=f"{ref} cannot be pulled: building on {BASE_IMAGE}")
            )
            buildargs["BASE_IMAGE"] = ensure_base_image(client, progress)
            continue
        else:
            raise RuntimeOperationError(
                f"cannot build {what}: its Dockerfile needs {_inert(ref)}, which is not on this "
                f"machine and cannot be pulled; declare `ARG BASE_IMAGE={_inert(ref)}` and "
                f"`FROM ${{BASE_IMAGE}}` so cftui can build it on {BASE_IMAGE}, or `docker load` it"
            )
        if check_onbuild:
            attrs = _image_attrs(client, ref) or {}
            triggers = list((attrs.get("Config") or {}).get("OnBuild") or [])
            found = dockerfile.onbuild_remote_sources(triggers)
            _refuse_remote_sources(found, f"the ONBUILD triggers of {_inert(ref)}", what)
    return buildargs


def ensure_image(
    client: Any, service: str, progress: Progress = no_progress, *, rebuild: bool = False
) -> str:
    """The image of a service (`SERVICE_IMAGES`) or project base
    (`PROJECT_BASES`), built from the project's sources if missing or stale."""
    image = _project_image(service)
    if image is None:
        known = ", ".join([*SERVICE_IMAGES, *PROJECT_BASES])
        raise RuntimeOperationError(f"unknown service image {service!r}: one of {known}")
    root = source_root()
    source = service_sources(root)[service]
    tag = f"{image}:{TAG}"
    want = _service_hash(source, root)
    labels = _image_labels(client, tag)
    if not rebuild and labels is not None and labels.get(HASH_LABEL) == want:
        return tag
    task = f"image {service}"
    with _file_lock(image.replace("/", "-"), progress, task):
        labels = _image_labels(client, tag)
        if not rebuild and labels is not None and labels.get(HASH_LABEL) == want:
            return tag
        progress(ProgressEvent(task, 0, None, f"building {tag}"))
        with tempfile.TemporaryDirectory(prefix=f"ctx-{service}-", dir=cache_dir()) as tmp:
            context = Path(tmp) / "context"
            shutil.copytree(source.context, context, symlinks=False)
            wheels = context / "wheels"
            if source.extra:
                wheelhouse(source.extra, wheels, progress)
            else:
                wheels.mkdir(exist_ok=True)
            text = (context / "Dockerfile").read_text(encoding="utf-8", errors="replace")
            instructions, _ = _parse(text, f"{source.context}/Dockerfile")
            buildargs = _choose_base(client, instructions, progress, task, tag)
            with _fallback_noted(buildargs, instructions):
                _docker_build(
                    client,
                    context,
                    tag,
                    task=task,
                    progress=progress,
                    buildargs=buildargs,
                    labels={HASH_LABEL: want},
                )
    return tag


@contextmanager
def _fallback_noted(
    buildargs: dict[str, str], instructions: list[dockerfile.Instruction]
) -> Iterator[None]:
    """A failed build on the fallback base says so (its default could not be had)."""
    try:
        yield
    except RuntimeOperationError as exc:
        if "BASE_IMAGE" not in buildargs:
            raise
        _, default = dockerfile.base_arg_default(instructions)
        raise RuntimeOperationError(
            f"{exc} (built on {BASE_IMAGE} because {default} cannot be pulled)"
        ) from None


def gateway_image_name(bot: str) -> str:
    return f"clawfactory/gateway-{bot}:{TAG}"


_GATEWAY_SALT = f"{_RECIPE}-gateway"


def gateway_source_hash(code_dir: Path) -> str:
    """The label a gateway image built from `code_dir` carries."""
    raw = build_context.read_dockerfile(Path(code_dir))
    return build_context.context_digest(Path(code_dir), raw, _GATEWAY_SALT)


def _gateway_dockerfile(code_dir: Path, what: str) -> tuple[bytes, list[dockerfile.Instruction]]:
    """code/Dockerfile, read once without following links, and parsed; a
    remote ADD source is refused here, before anything is built."""
    try:
        raw = build_context.read_dockerfile(code_dir)
    except RuntimeOperationError as exc:
        raise RuntimeOperationError(f"cannot build {what}: {exc}") from None
    instructions, escape = _parse(raw.decode("utf-8", errors="replace"), f"{code_dir}/Dockerfile")
    found = dockerfile.remote_add_sources(instructions, escape)
    _refuse_remote_sources(found, "code/Dockerfile", what)
    return raw, instructions


def build_gateway_image(
    client: Any,
    bot: str,
    code_dir: Path,
    progress: Progress = no_progress,
    *,
    nocache: bool = False,
) -> str:
    """A bot's gateway image from its `code/` (its Dockerfile), built when
    missing or when `code/` changed; `nocache` forces a full rebuild.

    The Dockerfile is the agent's to write, so its build is contained: no
    network for RUN (`network_mode="none"`), no ADD from a URL (dockerd would
    fetch it itself, on the host's network), a context tar that follows no
    link (`build_context`), and per-step memory limits.
    """
    validate_bot_name(bot)
    code_dir = Path(code_dir)
    tag = gateway_image_name(bot)
    what = f"the gateway of {bot}"
    raw, instructions = _gateway_dockerfile(code_dir, what)
    # A rebuild (`nocache`) compares with nothing: the tree is read once, into the tar.
    want = None if nocache else build_context.context_digest(code_dir, raw, _GATEWAY_SALT)
    labels = _image_labels(client, tag)
    if want is not None and labels is not None and labels.get(HASH_LABEL) == want:
        return tag
    task = f"gateway {bot}"
    with _file_lock(f"gateway-{bot}", progress, task):
        labels = _image_labels(client, tag)
        if want is not None and labels is not None and labels.get(HASH_LABEL) == want:
            return tag
        progress(ProgressEvent(task, 0, None, f"building {tag} from {code_dir}"))
        buildargs = _choose_base(client, instructions, progress, task, what, check_onbuild=True)
        _refuse_foreign_images(client, bot, instructions, buildargs)
        with tempfile.TemporaryFile(prefix=f"ctx-gateway-{bot}-", dir=cache_dir()) as ctx:
            # The label is the hash of what this tar holds, read in this pass.
            want = build_context.context_digest(code_dir, raw, _GATEWAY_SALT, out=ctx)
            ctx.seek(0)
            with _fallback_noted(buildargs, instructions):
                _docker_build(
                    client,
                    ctx,
                    tag,
                    task=task,
                    progress=progress,
                    buildargs=buildargs,
                    labels={HASH_LABEL: want, GATEWAY_LABEL: bot},
                    nocache=nocache,
                    contained=True,
                )
    return tag
