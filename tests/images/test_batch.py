"""Images built side by side (`cftui.runtime.images.batch`): the graph's
order and bound, a failure as one line naming its image while the others go
on, the recipe hashes untouched (an image already current is not rebuilt),
and the base's rootfs made ahead (`rootfs`) found by the build."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cftui.errors import CftuiError, RuntimeOperationError
from cftui.progress import ProgressEvent
from cftui.runtime.images import batch, catalog, rootfs, services


class Recorder:
    """When each step ran, and the most that ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.spans: dict[str, tuple[float, float]] = {}

    def step(self, name: str, hold: float = 0.05, barrier: threading.Barrier | None = None):
        def run() -> str:
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
            started = time.monotonic()
            try:
                if barrier is not None:
                    barrier.wait()  # only passes when its parties run together
                time.sleep(hold)
            finally:
                with self.lock:
                    self.running -= 1
                self.spans[name] = (started, time.monotonic())
            return f"tag-{name}"

        return run


def test_each_step_waits_for_what_it_needs_and_no_longer():
    rec = Recorder()
    steps = [
        batch.Step("front", rec.step("front"), ("base",)),
        batch.Step("llm", rec.step("llm"), ("base", "wheels")),
        batch.Step("base", rec.step("base", 0.2), build=False),
        batch.Step("wheels", rec.step("wheels", 0.05), build=False),
    ]
    out = batch.run_steps(steps, jobs=4)
    assert out.failures == {}
    assert out.results == {n: f"tag-{n}" for n in ("front", "llm", "base", "wheels")}
    for name in ("front", "llm"):
        assert rec.spans[name][0] >= rec.spans["base"][1]
    assert rec.spans["llm"][0] >= rec.spans["wheels"][1]
    assert set(out.seconds) == set(out.results)


def test_prerequisites_run_together_and_builds_are_bounded_by_jobs():
    rec = Recorder()
    together = threading.Barrier(2, timeout=10)
    steps = [
        # Two prerequisites with one job: they do not count against it (the
        # barrier only opens when both run at once).
        batch.Step("base", rec.step("base", barrier=together), build=False),
        batch.Step("wheels", rec.step("wheels", barrier=together), build=False),
        *(batch.Step(f"b{i}", rec.step(f"b{i}", 0.05), ("base",)) for i in range(3)),
    ]
    out = batch.run_steps(steps, jobs=1)
    assert out.failures == {} and not together.broken
    spans = sorted(rec.spans[f"b{i}"] for i in range(3))
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), "builds overlapped"

    rec = Recorder()
    builds = threading.Barrier(2, timeout=10)
    steps = [
        batch.Step(f"b{i}", rec.step(f"b{i}", 0.1, builds if i < 2 else None)) for i in range(5)
    ]
    out = batch.run_steps(steps, jobs=2)
    assert out.failures == {} and not builds.broken
    assert rec.most == 2  # two at once (the barrier proves it), never three


def test_one_failure_names_its_image_and_the_others_go_on():
    rec = Recorder()

    def broken() -> None:
        raise RuntimeOperationError("building clawfactory/x failed:\n  no space left")

    steps = [
        batch.Step("base", broken, build=False),
        batch.Step("front", rec.step("front"), ("base",)),
        batch.Step("fake-llm", rec.step("fake-llm")),
    ]
    out = batch.run_steps(steps, jobs=2)
    assert out.results == {"fake-llm": "tag-fake-llm"}
    assert out.failures["base"] == "building clawfactory/x failed: no space left"
    assert out.failures["front"].startswith("needs the base, which failed: building")
    assert "front" not in rec.spans  # never started
    exc = batch.ImagesFailed(out)
    assert "\n" not in str(exc)
    assert str(exc) == "base: building clawfactory/x failed: no space left (so not built: front)"


def test_a_bug_in_a_step_is_not_swallowed_and_a_cycle_is_refused():
    def bug() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        batch.run_steps([batch.Step("a", bug), batch.Step("b", lambda: 1)], jobs=2)
    with pytest.raises(ValueError, match="cycle"):
        batch.run_steps([batch.Step("a", lambda: 1, ("b",)), batch.Step("b", lambda: 1, ("a",))], 2)
    with pytest.raises(ValueError, match="unknown step 'z'"):
        batch.run_steps([batch.Step("a", lambda: 1, ("z",))], 2)


def test_jobs_default_to_two_more_than_the_cpus_or_the_environment(monkeypatch):
    monkeypatch.delenv(batch.JOBS_ENV, raising=False)
    assert batch.default_jobs() == len(os.sched_getaffinity(0)) + 2
    monkeypatch.setenv(batch.JOBS_ENV, "5")
    assert batch.default_jobs() == 5
    for bad in ("0", "-1", "many"):
        monkeypatch.setenv(batch.JOBS_ENV, bad)
        assert batch.default_jobs() == len(os.sched_getaffinity(0)) + 2


# --- the real engine ---------------------------------------------------------


@pytest.mark.docker
@pytest.mark.timeout(1800)  # may be the first to build every image
def test_current_images_are_kept_as_they_are(docker_client, service_images):
    """The hashes are the ones every other caller computes: nothing that is
    current is rebuilt, and the tags are the same images."""
    before = {s: docker_client.images.get(t).id for s, t in service_images.items()}
    events: list[ProgressEvent] = []
    out = batch.ensure_images(docker_client, list(service_images), events.append)
    assert out.results == service_images
    assert {s: docker_client.images.get(t).id for s, t in out.results.items()} == before
    assert not [e for e in events if "building" in e.message], events


def _source_copy(tmp_path: Path) -> Path:
    """A checkout of the image sources (images/, proxies/, the demo agent)."""
    src = catalog.REPO_ROOT
    root = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    shutil.copytree(src / "images", root / "images", ignore=ignore)
    shutil.copytree(src / "proxies", root / "proxies", ignore=ignore)
    demo = root / "cftui" / "templates" / "demo-agent"
    shutil.copytree(src / "cftui" / "templates" / "demo-agent", demo, ignore=ignore)
    return root


@pytest.fixture
def broken_front(tmp_path, monkeypatch, service_images) -> Path:
    """A source tree whose front Dockerfile the engine would refuse (nothing
    is built from it: it fails before any build, so no shared image moves)."""
    root = _source_copy(tmp_path)
    (root / "images" / "front" / "Dockerfile").write_text("# escape=x\nFROM scratch\n")
    monkeypatch.setenv("CLAWFACTORY_SOURCE", str(root))
    return root


@pytest.mark.docker
@pytest.mark.timeout(1800)
def test_a_failed_image_is_one_line_naming_it_and_the_others_are_had(docker_client, broken_front):
    with pytest.raises(batch.ImagesFailed) as info:
        batch.ensure_images(docker_client, ["front", "demo-agent"])
    exc = info.value
    assert set(exc.failures) == {"front"}
    assert "invalid escape token" in exc.failures["front"]
    assert "\n" not in str(exc) and str(exc).startswith("front: ")
    assert exc.outcome.results == {"demo-agent": "clawfactory/demo-agent:latest"}


@pytest.mark.docker
@pytest.mark.timeout(1800)
def test_build_images_prints_one_line_per_failed_image(broken_front):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-m", "cftui.cli.build_images", "front", "demo-agent", "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 1, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("build-images: front: "), proc.stderr
    assert "Traceback" not in proc.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "cftui.cli.build_images", "--jobs", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert bad.returncode == 2 and bad.stderr.strip() == "build-images: --jobs must be at least 1"


@pytest.mark.docker
def test_the_stack_reports_the_first_failed_image_as_before(docker_client, broken_front):
    """A bot's start still names the image that failed, with its reason."""
    from cftui.runtime.docker.build import STACK_SERVICES

    with pytest.raises(batch.ImagesFailed) as info:
        batch.ensure_images(docker_client, STACK_SERVICES)
    assert list(info.value.failures) == ["front"]
    # The copy hashes as the checkout does: the others are current, not rebuilt.
    assert set(info.value.outcome.results) == {"llm-proxy", "egress"}
    assert services.image_current(docker_client, "llm-proxy")


# --- the rootfs made ahead ---------------------------------------------------


@pytest.fixture
def cache_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _recipe(tmp_path: Path, body: str) -> Path:
    """A mkrootfs.sh of the test's own under images/NAME/ (the rootfs step
    runs any recipe; the real one is minutes of debootstrap)."""
    script = tmp_path / "src" / "images" / "toy" / "mkrootfs.sh"
    script.parent.mkdir(parents=True)
    script.write_text(body)
    return script


# The interpreter under the venv, with no site-packages of its own (-S).
BARE_PYTHON = str(Path(sys.base_prefix) / "bin" / "python3")

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("debootstrap") is None,
    reason="the rootfs step needs root and debootstrap",
)


@needs_root
def test_a_rootfs_made_ahead_is_found_by_the_build_and_discarded_after(tmp_path, cache_home):
    runs = tmp_path / "runs"
    script = _recipe(
        tmp_path, f'set -e\nmkdir -p "$1/etc"\necho "$2" >"$1/etc/mirror"\necho x >>{runs}\n'
    )
    events: list[ProgressEvent] = []
    made = rootfs.debootstrapped(script, "h1", "toy:1", events.append, "toy")
    assert (made / "etc" / "mirror").read_text().strip() == rootfs.mirror()
    again = rootfs.debootstrapped(script, "h1", "toy:1", events.append, "toy")
    assert again == made and runs.read_text() == "x\n"  # ran once
    assert any("debootstrapped already" in e.message for e in events)
    rootfs.debootstrapped(script, "h2", "toy:1")  # a new recipe: made, the old one pruned
    assert runs.read_text() == "x\nx\n" and not made.exists()
    rootfs.discard(script, "h2")
    assert not (cache_home / "clawfactory" / "rootfs" / "toy-h2").exists()


@needs_root
def test_a_failed_rootfs_is_one_line_and_made_again_next_time(tmp_path, cache_home):
    script = _recipe(tmp_path, 'mkdir -p "$1"\necho "E: Couldn\'t download packages" >&2\nexit 1\n')
    with pytest.raises(CftuiError) as info:
        rootfs.debootstrapped(script, "h1", "toy:1")
    assert str(info.value) == "building toy:1 (debootstrap) failed: E: Couldn't download packages"
    script.write_text('mkdir -p "$1"\n')
    assert rootfs.debootstrapped(script, "h1", "toy:1").is_dir()


def test_the_make_ahead_step_needs_only_the_standard_library(tmp_path):
    """`make demo` runs it with the machine's python3 before any venv exists:
    no site-packages (-S), so the docker SDK cannot be what it uses."""
    python3 = BARE_PYTHON
    env = dict(os.environ, PYTHONPATH=str(catalog.REPO_ROOT), XDG_CACHE_HOME=str(tmp_path))
    env.pop("DOCKER_HOST", None)
    env["PATH"] = str(tmp_path / "bin")  # no docker CLI: nothing to learn, nothing made
    proc = subprocess.run(
        [python3, "-S", "-m", "cftui.runtime.images.ahead"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    assert not (tmp_path / "clawfactory" / "rootfs").exists()


@pytest.mark.docker
def test_the_make_ahead_step_makes_nothing_when_the_base_is_current(
    tmp_path, docker_client, service_images
):
    from cftui.runtime.images.base_image import ensure_base_image

    ensure_base_image(docker_client)
    python3 = BARE_PYTHON
    env = dict(os.environ, PYTHONPATH=str(catalog.REPO_ROOT), XDG_CACHE_HOME=str(tmp_path))
    proc = subprocess.run(
        [python3, "-S", "-m", "cftui.runtime.images.ahead"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc
    assert not (tmp_path / "clawfactory" / "rootfs").exists()


@pytest.fixture
def two_bots(docker_client):
    names = [f"t{os.urandom(4).hex()}" for _ in range(2)]
    yield names
    for name in names:
        with contextlib.suppress(Exception):
            docker_client.images.remove(catalog.gateway_image_name(name), force=True, noprune=True)


@pytest.mark.docker
@pytest.mark.timeout(1800)
def test_two_gateways_of_one_dockerfile_build_once(
    docker_client, service_images, two_bots, tmp_path
):
    """The second gateway waits for the first and takes every layer from the
    cache (built side by side, both would build every step)."""
    code = tmp_path / "code"
    shutil.copytree(catalog.REPO_ROOT / "cftui" / "templates" / "demo-agent", code)
    (code / "marker.txt").write_text(os.urandom(8).hex())  # a context no cache holds yet
    events: list[ProgressEvent] = []
    gateways = [batch.Gateway(name, code) for name in two_bots]
    out = batch.ensure_images(docker_client, ["front"], events.append, gateways=gateways)
    first, second = (gw.step for gw in gateways)
    assert out.results[first] == catalog.gateway_image_name(two_bots[0])
    assert out.results[second] == catalog.gateway_image_name(two_bots[1])
    tasks = [e.task for e in events]
    built_first = max(i for i, t in enumerate(tasks) if t == first)
    assert min(i for i, t in enumerate(tasks) if t == second) > built_first
    mine = [e.message for e in events if e.task == second]
    steps = [m for m in mine if m.startswith("Step ")]
    cached = [m for m in mine if "Using cache" in m]
    # All but ARG, FROM and the labels the build adds (the bot's name differs).
    assert len(steps) > 8 and len(cached) >= len(steps) - 3, mine
