"""The fresh-machine demo time (issue 23: at most 5 minutes from `git clone`
to the demo fleet running), for the baseline ref and the candidate ref in
the same run.

Each run is a machine with nothing on it as far as the project can tell:
- a Docker Engine of its own with an empty data-root, in a network
  namespace of its own (tests/hosts/testhost.py), so the shared engine and
  its `clawfactory/*:latest` images are neither used nor touched;
- a fresh `git clone` of the ref in a temporary directory;
- an empty HOME (so an empty pip cache, `~/.cache/clawfactory` with no
  wheelhouse, no base rootfs, no demo home), XDG_* under it;
- the demo command run inside the namespace (the demo checks its
  containers by their addresses, which only the namespace reaches), with
  the namespace's traffic NATed out through the machine, so PyPI and the
  Debian mirror are fetched for real.

Timed: the README's `make demo`, until both demo bots are up (where the
TUI would open): `make demo DEMO_ARGS=--no-tui` where the ref's Makefile
takes DEMO_ARGS; otherwise its recipe as two commands, `make venv
host-deps` and then `.venv/bin/cftui demo --no-tui`.
What this machine has that a fresh one would not: the host packages
`make host-deps` installs (debootstrap, age, tmux, rsync, ssh) are already
installed, and Python 3.11 and Docker are here; no pip, wheel or apt
archive cache is shared with the run.

Needs root, `ip netns`, `iptables`, dockerd, sshd (for the test host).

    .venv/bin/python bench/demo_fresh.py [--baseline main] [--candidate h-parallel-builds]
        [--repo /work/main] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.hosts.testhost import TestHost

GOAL_S = 300.0
RUN_TIMEOUT_S = 1800
# Test hosts of tests/hosts use indexes 0-1, bench/hosts.py 8-10.
FIRST_INDEX = 40


@dataclass
class Run:
    ref: str
    commit: str
    setup_s: float
    demo_s: float
    ok: bool
    log: Path
    whole: bool = False  # one `make demo` (setup_s is all of it)

    @property
    def total_s(self) -> float:
        return self.setup_s + self.demo_s


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=120)


class Nat:
    """The namespace's way out: a default route to the machine's end of the
    veth, masquerading on the machine, the forward accepted (Docker's
    FORWARD policy is DROP). Every rule is removed by `close`."""

    def __init__(self, host: TestHost) -> None:
        self.host = host
        subnet = f"{host.address}/30"
        self.rules = [
            ("nat", "POSTROUTING", ["-s", subnet, "!", "-o", host.veth, "-j", "MASQUERADE"]),
            ("filter", "DOCKER-USER", ["-i", host.veth, "-j", "ACCEPT"]),
            ("filter", "DOCKER-USER", ["-o", host.veth, "-j", "ACCEPT"]),
        ]

    def open(self) -> None:
        if Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() != "1":
            raise SystemExit("net.ipv4.ip_forward is 0 (the shared engine sets it): not changed")
        _sh("ip", "netns", "exec", self.host.netns, "ip", "route", "replace", "default",
            "via", self.host.machine_address)  # fmt: skip
        for table, chain, rule in self.rules:
            _sh("iptables", "-t", table, "-I", chain, "1", *rule)

    def close(self) -> None:
        for table, chain, rule in self.rules:
            _sh("iptables", "-t", table, "-D", chain, *rule, check=False)


def _stamped(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> tuple[bool, float]:
    """Run `cmd`, every output line into `log` with its second since the
    start; (succeeded, seconds)."""
    started = time.monotonic()
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, errors="replace",
        )  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(f"{time.monotonic() - started:7.1f} {line.rstrip()}\n")
            out.flush()
        try:
            rc = proc.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = -1
    return rc == 0, time.monotonic() - started


def fresh_run(repo: Path, ref: str, index: int, logs: Path, keep: bool) -> Run:
    work = Path(tempfile.mkdtemp(prefix=f"cf-demo-fresh-{index}-", dir="/tmp"))
    home = work / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    key = home / ".ssh" / "id_ed25519"
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    host = TestHost(f"cfdf{index}", index, work / "host")
    nat = Nat(host)
    log = logs / f"demo-fresh-{ref.replace('/', '_')}.log"
    log.write_text("")
    try:
        host.close()
        host.build(key.with_suffix(".pub").read_text())
        nat.open()
        clone = work / "clawfactory"
        _sh("git", "clone", "-q", "--branch", ref, str(repo), str(clone))
        commit = _sh("git", "-C", str(clone), "rev-parse", "--short", "HEAD").stdout.strip()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PIP_", "XDG_", "CLAWFACTORY", "CFTUI", "VIRTUAL_ENV", "PYTHON"))
        }
        env.update(
            HOME=str(home),
            XDG_CACHE_HOME=str(home / ".cache"),
            XDG_DATA_HOME=str(home / ".local" / "share"),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_STATE_HOME=str(home / ".local" / "state"),
            DOCKER_HOST=host.docker_host,
            PIP_DISABLE_PIP_VERSION_CHECK="1",
        )
        if os.environ.get("PIP_CERT"):
            env["PIP_CERT"] = os.environ["PIP_CERT"]
        inside = ["nsenter", f"--net=/var/run/netns/{host.netns}", "--"]
        if "DEMO_ARGS" in (clone / "Makefile").read_text():
            # The ref's own `make demo`, told not to open the TUI.
            ok, total_s = _stamped(
                [*inside, "make", "demo", "DEMO_ARGS=--no-tui"], cwd=clone, env=env, log=log
            )
            return Run(ref, commit, total_s, 0.0, ok, log, whole=True)
        # A Makefile whose `make demo` always opens the TUI: its recipe as
        # two commands (`demo: venv host-deps` then `cftui demo`).
        ok, setup_s = _stamped([*inside, "make", "venv", "host-deps"], cwd=clone, env=env, log=log)
        demo_s = 0.0
        if ok:
            ok, demo_s = _stamped(
                [*inside, ".venv/bin/cftui", "demo", "--no-tui"], cwd=clone, env=env, log=log
            )
        return Run(ref, commit, setup_s, demo_s, ok, log)
    finally:
        nat.close()
        if keep:
            print(f"kept {work} (engine at {host.docker_host})", file=sys.stderr)
        else:
            host.close()
            _drop_demo_disks(home / ".local" / "share" / "clawfactory-demo")
            shutil.rmtree(work, ignore_errors=True)


def _drop_demo_disks(demo: Path) -> None:
    """The demo bots' loop disks (mounted, their frozen mount points
    immutable): what `cftui delete` would release, without its engine."""
    from cftui import loopdisk

    for image in sorted((demo / "disks").glob("*.ext4")):
        loopdisk.destroy(image, demo / "bot_repos" / image.stem)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repo", type=Path, default=Path("/work/main"), help="a repository to clone"
    )
    parser.add_argument("--baseline", default="main")
    parser.add_argument("--candidate", default="h-parallel-builds")
    parser.add_argument("--only", choices=["baseline", "candidate"], help="run one side only")
    parser.add_argument("--logs", type=Path, default=Path("/tmp"), help="where the run logs go")
    parser.add_argument("--keep", action="store_true", help="leave the engines and clones")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("demo_fresh: needs root (ip netns, iptables, dockerd)", file=sys.stderr)
        return 2
    # Each side its own namespace (index), so two runs can never share one.
    sides = [(0, "baseline", args.baseline), (1, "candidate", args.candidate)]
    sides = [s for s in sides if args.only in (None, s[1])]
    runs: dict[str, Run] = {}
    for i, side, ref in sides:
        load = os.getloadavg()[0]
        run = fresh_run(args.repo, ref, FIRST_INDEX + i, args.logs, args.keep)
        runs[side] = run
        state = "demo fleet up" if run.ok else "FAILED (see the log)"
        how = (
            "make demo DEMO_ARGS=--no-tui"
            if run.whole
            else f"make venv host-deps {run.setup_s:6.1f} s + cftui demo --no-tui {run.demo_s:6.1f} s"
        )
        end = os.getloadavg()[0]
        print(
            f"{side:9} {ref} ({run.commit}): {how}: total {run.total_s:6.1f} s "
            f"({run.total_s / 60:.1f} min), {state}; load {load:.1f} at start, {end:.1f} at end; "
            f"log {run.log}",
            flush=True,
        )
    if "baseline" in runs and "candidate" in runs:
        base, cand = runs["baseline"], runs["candidate"]
        print(f"candidate / baseline: total {cand.total_s / base.total_s:.2f}x")
    for side, run in runs.items():
        met = "met" if run.ok and run.total_s <= GOAL_S else "NOT met"
        print(f"goal {GOAL_S / 60:.0f} min from git clone ({side}): {met} ({run.total_s:.1f} s)")
    return 0 if all(r.ok for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
