"""What cftui pushes into a Lima VM from the host: the `lima/` directory
(template, provisioning scripts, units) and a wheelhouse holding the
`clawfactory-proxies` wheel built from this checkout's `proxies/`.

On a Linux host with the VM's Python (3.11, Debian 12) the wheelhouse also
holds every dependency, so the VM installs with no index at all (the tests'
stand-in VM has none); elsewhere (macOS) the VM fetches the dependencies
from PyPI itself, since wheels built for the Mac would not run in it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import platform
import sys
from pathlib import Path

from cftui.errors import RuntimeOperationError, RuntimeUnavailable
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime.images.hashing import tree_hash

REPO = Path(__file__).resolve().parents[3]
SYSTEM_SH_MARK = "#CF-SYSTEM-SH#"


def lima_dir() -> Path:
    """The `lima/` directory (override: CFTUI_LIMA_DIR)."""
    path = Path(os.environ.get("CFTUI_LIMA_DIR") or REPO / "lima")
    if not (path / "clawfactory.yaml").is_file():
        raise RuntimeUnavailable(
            f"{path}/clawfactory.yaml not found: run cftui from its checkout or set CFTUI_LIMA_DIR"
        )
    return path


def proxies_dir() -> Path:
    path = Path(os.environ.get("CFTUI_PROXIES_DIR") or REPO / "proxies")
    if not (path / "pyproject.toml").is_file():
        raise RuntimeUnavailable(f"{path}/pyproject.toml not found: set CFTUI_PROXIES_DIR")
    return path


def render_template(dest: Path) -> Path:
    """`lima/clawfactory.yaml` with `provision/system.sh` inlined in its
    system provisioning script, written to `dest`."""
    src = lima_dir()
    template = (src / "clawfactory.yaml").read_text(encoding="utf-8")
    script = (src / "provision" / "system.sh").read_text(encoding="utf-8")
    lines = template.splitlines(keepends=True)
    out: list[str] = []
    for line in lines:
        if line.strip() == SYSTEM_SH_MARK:
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s if s.strip() else "\n" for s in script.splitlines(keepends=True))
        else:
            out.append(line)
    dest.write_text("".join(out), encoding="utf-8")
    return dest


# The VM's virtualenvs and the extras each holds (lima/provision/vm-setup.sh).
VM_ENVIRONMENTS = ("llm,fake", "egress")


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "clawfactory" / "lima-wheels"


def _full_wheelhouse_possible() -> bool:
    """Whether wheels built here install in the VM (Linux, CPython 3.11)."""
    return sys.platform.startswith("linux") and sys.version_info[:2] == (3, 11)


async def _pip_wheel(out: Path, *args: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pip", "wheel", "-q", "-w", str(out), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    text, _ = await proc.communicate()
    if proc.returncode != 0:
        lines = [ln for ln in text.decode(errors="replace").splitlines() if ln.strip()]
        raise RuntimeOperationError(
            f"building the proxies' wheels failed: {lines[-1] if lines else proc.returncode}"
        )


async def wheelhouse(progress: Progress = no_progress) -> Path:
    """A directory of wheels for the VM. The dependencies are fetched once per
    `proxies/pyproject.toml`, the proxies' own wheel once per content of its
    code, so an edit of the proxies costs a few seconds, not a full fetch."""
    src = proxies_dir()
    full = _full_wheelhouse_possible()
    pyproject = (src / "pyproject.toml").read_text()
    tag = platform.machine() + str(full)
    code_key = hashlib.sha256((tree_hash(src / "cfproxies") + pyproject).encode()).hexdigest()[:16]
    deps_key = hashlib.sha256((pyproject + tag).encode()).hexdigest()[:16]
    house = _cache_root() / f"house-{code_key}-{deps_key}"
    if (house / ".complete").exists():
        return house
    deps = _cache_root() / f"deps-{deps_key}"
    if full and not (deps / ".complete").exists():
        progress(ProgressEvent("wheels", message="fetching the proxies' dependencies"))
        # One resolution per VM environment, as vm-setup.sh installs them:
        # mitmproxy's pins (h11 0.14) and the LLM proxy's (genai-prices'
        # httpx2 needs h11 0.16) cannot share one, and pip asked for both at
        # once backtracks until "resolution-too-deep".
        for extras in VM_ENVIRONMENTS:
            await _pip_wheel(deps, f"{src}[{extras}]")
        for own in deps.glob("clawfactory_proxies-*.whl"):
            own.unlink()
        (deps / ".complete").touch()
    progress(ProgressEvent("wheels", message="building the clawfactory-proxies wheel"))
    own_dir = _cache_root() / f"own-{code_key}"
    await _pip_wheel(own_dir, "--no-deps", str(src))
    house.mkdir(parents=True, exist_ok=True)
    for d in (deps, own_dir) if full else (own_dir,):
        for whl in d.glob("*.whl"):
            target = house / whl.name
            if not target.exists():
                os.link(whl, target)
    (house / ".complete").touch()
    return house
