"""The Lima runtime: a bot's whole stack as systemd services in a Lima VM.

VM lifecycle goes through `limactl` (lima_ctl), everything inside the VM
through one reused asyncssh connection per VM (lima_ssh), files through
rsync over the same SSH settings, audit files back to the host as they grow
(lima_audit). What a bot looks like inside the VM is computed in lima_plan;
the VM side is `lima/` (template, provisioning scripts, units).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncssh
from cfproxies.envfile import read_env_file

from cftui.botinit import recipient_of
from cftui.errors import CftuiError, RuntimeOperationError, RuntimeUnavailable
from cftui.fleet import BotConfig, FleetHome
from cftui.gateway_config import dumps as config_dumps
from cftui.gateway_config import parse_config
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.runtime.base import (
    MISSING,
    RUNNING,
    SERVICES,
    STOPPED,
    BotStatus,
    KillReport,
    LogLine,
    Runtime,
    ServiceStatus,
    StateChange,
)
from cftui.runtime.lima_assets import lima_dir, render_template, tree_hash, wheelhouse
from cftui.runtime.lima_audit import AuditFollower
from cftui.runtime.lima_ctl import Instance, Limactl, lima_home
from cftui.runtime.lima_kill import kill_scripts, parse_kill
from cftui.runtime.lima_plan import (
    CONF_DIR,
    KILLED_DIR,
    PROVISION_DIR,
    SRV,
    bot_env,
    gateway_argv,
    gateway_conf,
    gateway_secret_env,
    llm_secret_env,
    openclaw_config,
    openclaw_models_json,
    ports_for,
    service_of_unit,
    unit_name,
    unix_user,
)
from cftui.runtime.lima_ssh import VMShell, rsync
from cftui.runtime.lima_units import SHOW_PROPS, parse_list_units, parse_show, service_status
from cftui.snapshot_exclusions import rsync_filter_args

HEALTH_TIMEOUT_S = 60.0
# Connecting with a VM's last ssh.config before asking limactl.
FAST_CONNECT_S = 2.0
# A unit counts as up once it has stayed active this long (not crash-looping).
STABLE_S = 1.5
# How long a unit's start time, read with `systemctl show`, is trusted while its
# state stays the same (bounds a restart missed between two status calls).
SHOW_TTL_S = 30.0
# The kill switch's own budget is 10 s (killswitch.KILL_TIMEOUT_S): the
# graceful VM stop gets part of it, then it is forced.
KILL_VM_GRACE_S = 4.0


BATCH_WINDOW_S = 0.01


@dataclass
class _KillBatch:
    """The kills of one VM's bots that arrived together."""

    bots: list[BotConfig] = field(default_factory=list)
    reports: dict[str, KillReport] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)


def _q(s: str) -> str:
    return shlex.quote(s)


def gateway_rsync_path(user: str) -> str:
    """rsync's `--rsync-path` for the VM side of a transfer of a gateway's
    tree: run as that gateway's user, never as root."""
    return f"--rsync-path=sudo -n -u {_q(user)} rsync"


class LimaRuntime(Runtime):
    """Bots as systemd services in Lima VMs (one VM may hold several bots)."""

    name = "lima"

    def __init__(self, home: FleetHome, limactl: Limactl | None = None) -> None:
        super().__init__(home)
        self.limactl = limactl or Limactl()
        self._shells: dict[str, VMShell] = {}
        self._followers: dict[str, AuditFollower] = {}
        self._vm_locks: dict[str, asyncio.Lock] = {}
        self._setup_done: set[str] = set()
        # When each kill step finished (monotonic), for the benchmark.
        self.kill_timings: dict[str, dict[str, float]] = {}
        self.stop_vm_on_kill = True
        self._kill_batches: dict[str, _KillBatch] = {}
        # (vm, unit) -> (its state then, when, its start time and result)
        self._show_cache: dict[tuple[str, str], tuple[tuple[str, str], float, dict]] = {}

    # --- the VM ----------------------------------------------------------
    async def check(self) -> None:
        self.limactl.path()

    def _lock(self, vm: str) -> asyncio.Lock:
        return self._vm_locks.setdefault(vm, asyncio.Lock())

    async def _shell(self, vm: str, inst: Instance | None = None) -> VMShell:
        """The VM's reused SSH connection; the VM must be running."""
        shell = self._shells.get(vm)
        if shell is not None:
            return shell
        if inst is None:
            # Lima's own ssh.config first: a running VM answers at once, and
            # limactl (a process, slow on a busy host) is asked only if not.
            cfg = lima_home() / vm / "ssh.config"
            if cfg.is_file():
                shell = VMShell(vm, cfg)
                try:
                    await shell.connection(timeout=FAST_CONNECT_S)
                except (RuntimeUnavailable, ValueError):
                    await shell.close()
                else:
                    self._shells.setdefault(vm, shell)
                    if self._shells[vm] is not shell:
                        await shell.close()
                    return self._shells[vm]
        inst = inst or await self.limactl.instance(vm)
        if inst is None:
            raise RuntimeUnavailable(f"Lima VM {vm} does not exist: `cftui start` creates it")
        if not inst.running:
            raise RuntimeUnavailable(f"Lima VM {vm} is {inst.status or 'not running'}")
        cfg = Path(inst.ssh_config_file or Path(inst.dir) / "ssh.config")
        shell = VMShell(vm, cfg)
        self._shells[vm] = shell
        return shell

    async def _drop_shell(self, vm: str) -> None:
        for key in [k for k in self._show_cache if k[0] == vm]:
            del self._show_cache[key]  # a VM seen again may have rebooted
        shell = self._shells.pop(vm, None)
        if shell is not None:
            await shell.close()
        self._setup_done.discard(vm)

    async def ensure_vm(self, bot: BotConfig, progress: Progress = no_progress) -> VMShell:
        """Create and boot the bot's VM if needed, and set up what its bots share."""
        vm = bot.lima.vm
        async with self._lock(vm):
            inst = await self.limactl.instance(vm)
            if inst is None:
                progress(ProgressEvent("vm", message=f"creating Lima VM {vm}"))
                with tempfile.TemporaryDirectory(prefix="cftui-lima-") as tmp:
                    template = render_template(Path(tmp) / "clawfactory.yaml")
                    await self.limactl.create(
                        vm,
                        template,
                        cpus=bot.lima.cpus,
                        memory_gib=bot.lima.memory_gib,
                        disk_gib=bot.lima.disk_gib,
                    )
                inst = await self.limactl.instance(vm)
            if inst is None or not inst.running:
                await self._drop_shell(vm)
                progress(ProgressEvent("vm", message=f"booting Lima VM {vm}"))
                await self.limactl.start(vm)
                inst = await self.limactl.instance(vm)
                if inst is None or not inst.running:
                    raise RuntimeOperationError(
                        f"VM {vm} failed to boot: limactl reports it stopped"
                    )
            shell = await self._shell(vm, inst)
            if vm not in self._setup_done:
                await self._vm_setup(shell, progress)
                self._setup_done.add(vm)
            return shell

    async def _vm_setup(self, shell: VMShell, progress: Progress) -> None:
        """Push lima/ and the wheels, run vm-setup.sh when their content changed."""
        wheels = await wheelhouse(progress)
        src = lima_dir()
        digest = tree_hash(src, wheels)
        stamp = "/var/lib/clawfactory/vm-setup.hash"
        cur = await shell.run(f"cat {stamp} 2>/dev/null || true", what="reading the setup stamp")
        if cur.out.strip() == digest:
            return
        progress(ProgressEvent("vm", message="installing the proxies and units in the VM"))
        await shell.run(f"install -d -m 0700 {PROVISION_DIR}", what="provision dir")
        await rsync(
            shell,
            "-a",
            "--delete",
            "--rsync-path=sudo rsync",
            "--exclude=wheels/",
            f"{src}/",
            f"{shell.rsync_shell()[1]}:{PROVISION_DIR}/",
            what="lima/",
        )
        await rsync(
            shell,
            "-a",
            "--delete",
            "--rsync-path=sudo rsync",
            f"{wheels}/",
            f"{shell.rsync_shell()[1]}:{PROVISION_DIR}/wheels/",
            what="the wheelhouse",
        )
        res = await shell.run(
            f"bash {PROVISION_DIR}/provision/vm-setup.sh {PROVISION_DIR} 2>&1",
            check=False,
            timeout=900,
        )
        if res.code != 0:
            raise RuntimeOperationError(
                f"VM {shell.vm}: provisioning step vm-setup.sh failed: {res.reason()}"
            )
        await shell.run(f"echo {digest} > {stamp}", what="writing the setup stamp")

    # --- one bot ---------------------------------------------------------
    def _units(self, bot: str) -> list[str]:
        return [unit_name(s, bot) for s in ("llm-proxy", "egress", "gateway", "front")]

    def _plan(self, bot: BotConfig) -> dict[str, str]:
        """Every file the bot needs in the VM, rendered on the host first, so
        that a bad value is refused before the VM is touched."""
        name = bot.name
        host_env = read_env_file(self.home.gateway_env(name))
        argv, image_env = gateway_argv(bot, self.home.code_dir(name))
        # The demo agent's direct probe: sshd answers everyone in the VM but
        # the gateway's user, whose packets nftables drops.
        probe = "http://127.0.0.1:22/" if bot.gateway == "generic" else ""
        return {
            "bot.env": bot_env(bot, recipient_of(self.home, name)),
            "gateway.conf": gateway_conf(bot, argv, image_env, probe),
            "gateway.env": gateway_secret_env(host_env),
            "llm.env": llm_secret_env(host_env),
            "providers.env": self.home.providers_env(name).read_text(encoding="utf-8"),
            "openclaw": "yes" if any("openclaw" in a for a in argv) else "",
            "proxy_token": host_env.get("CF_PROXY_TOKEN", ""),
            "gateway_token": host_env.get("OPENCLAW_GATEWAY_TOKEN", ""),
        }

    async def _prepare_bot(
        self, shell: VMShell, bot: BotConfig, plan: dict[str, str], progress: Progress
    ) -> None:
        """Settings, users, containment, secrets and files of one bot in the VM."""
        name = bot.name
        conf = f"{CONF_DIR}/{name}"
        with self.gate(bot, "clearing its kill marker in the VM"):
            await shell.run(
                f"install -d -m 0755 {conf} && rm -f {KILLED_DIR}/{name}", what="config dir"
            )
        await shell.write_file(f"{conf}/bot.env", plan["bot.env"], mode="0644")
        res = await shell.run(
            f"bash /usr/local/lib/clawfactory/bot-setup.sh {name} 2>&1", check=False, timeout=120
        )
        if res.code != 0:
            raise RuntimeOperationError(
                f"VM {shell.vm}: provisioning step bot-setup.sh {name} failed: {res.reason()}"
            )
        await shell.write_file(f"{conf}/gateway.conf", plan["gateway.conf"], mode="0644")
        secrets = f"{SRV}/secrets/{name}"
        await shell.write_file(f"{secrets}/gateway.env", plan["gateway.env"])
        await shell.write_file(f"{secrets}/llm.env", plan["llm.env"])
        await shell.write_file(
            f"{secrets}/providers.env", plan["providers.env"], owner=unix_user("llm-proxy", name)
        )
        for host_file, sub, svc in (
            (self.home.scrub_rules(name), "llm", "llm-proxy"),
            (self.home.audit_dir(name) / "egress.control.json", "egress", "egress"),
        ):
            if host_file.is_file():
                await shell.write_file(
                    f"{SRV}/audit/{name}/{sub}/{host_file.name}",
                    host_file.read_text(encoding="utf-8"),
                    owner=unix_user(svc, name),
                )
        progress(ProgressEvent("sync", message=f"{name}: pushing code/"))
        await self._push(shell, bot, "code", delete=True)
        pending = self._pending_push(name)
        has_state = await shell.run(
            f'test -n "$(ls -A {SRV}/bots/{name}/state)"', check=False, what="state check"
        )
        if pending.exists():  # a restore happened while the VM was stopped
            await self._push(shell, bot, "state", delete=True)
            pending.unlink()
        elif has_state.code != 0:  # else the VM's state wins once it has one
            await self._push(shell, bot, "state", delete=False)
        if plan["openclaw"]:
            await self._wire_openclaw(shell, bot, plan)

    async def _wire_openclaw(self, shell: VMShell, bot: BotConfig, plan: dict[str, str]) -> None:
        """Point OpenClaw's own config (and any per-agent models.json, which
        would win over it) at the bot's loopback proxies, in the VM's state."""
        # state/ is the gateway's: read, found and written as its user, so
        # a link it planted there reaches nothing it could not reach itself.
        state = f"{SRV}/bots/{bot.name}/state"
        user = unix_user("gateway", bot.name)
        cur = await shell.read_file_as(user, f"{state}/openclaw.json")
        config = parse_config(cur) if cur and cur.strip() else {}
        wired = openclaw_config(
            config, bot, proxy_token=plan["proxy_token"], gateway_token=plan["gateway_token"]
        )
        await shell.write_file_as(user, f"{state}/openclaw.json", config_dumps(wired))
        found = await shell.run(
            f"runuser -u {_q(user)} -- find {state}/agents -path '*/agent/models.json' "
            "2>/dev/null || true",
            what="find",
        )
        for path in found.out.split():
            text = await shell.read_file_as(user, path)
            try:
                data = json.loads(text or "")
            except ValueError:
                continue
            new = openclaw_models_json(data, bot, proxy_token=plan["proxy_token"])
            if new != data:
                await shell.write_file_as(user, path, json.dumps(new, indent=2) + "\n")

    async def _push(self, shell: VMShell, bot: BotConfig, which: str, *, delete: bool) -> None:
        src = self.home.code_dir(bot.name) if which == "code" else self.home.state_dir(bot.name)
        user = unix_user("gateway", bot.name)
        args = [
            "-a",
            # The receiver runs as the gateway's user (so the files are its
            # own): no privilege is used in a tree the agent can write, where a
            # link swapped in mid-transfer would otherwise steer root.
            gateway_rsync_path(user),
            "--chmod=Du=rwx,go=,Fu=rw,go=",
        ]
        if delete:
            args.append("--delete")
        await rsync(
            shell,
            *args,
            f"{src}/",
            f"{shell.rsync_shell()[1]}:{SRV}/bots/{bot.name}/{which}/",
            what=f"{bot.name}'s {which}/",
        )

    async def up(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        plan = self._plan(bot)
        shell = await self.ensure_vm(bot, progress)
        progress(ProgressEvent("setup", message=f"setting up {bot.name} in VM {bot.lima.vm}"))
        await self._prepare_bot(shell, bot, plan, progress)
        units = " ".join(self._units(bot.name))
        progress(ProgressEvent("start", message=f"starting {bot.name}'s services"))
        with self.gate(bot, "starting its services"):
            res = await shell.run(
                f"systemctl reset-failed {units} 2>/dev/null; systemctl start {units}", check=False
            )
        if res.code != 0:
            raise RuntimeOperationError(
                f"{bot.name}: starting its services failed: {res.reason()}"
                + await self._journal_tail(shell, bot.name)
            )
        self._follower(shell, bot.name).start()
        await self._wait_healthy(shell, bot)

    async def _journal_tail(self, shell: VMShell, bot: str) -> str:
        units = " ".join(f"-u {u}" for u in self._units(bot))
        res = await shell.run(f"journalctl {units} -n 4 -o cat --no-pager", check=False)
        text = " | ".join(ln.strip() for ln in res.out.splitlines() if ln.strip())
        return f" (journal: {text})" if text else ""

    async def _wait_healthy(self, shell: VMShell, bot: BotConfig) -> None:
        """Every unit active and the gateway answering /readyz, /health or TCP."""
        port = ports_for(bot).gateway
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            status = (await self._status_vm(bot.lima.vm, [bot]))[bot.name]
            failed = [s for s in status.services.values() if s.state in (STOPPED, MISSING)]
            if failed:
                raise RuntimeOperationError(
                    f"{bot.name}: {failed[0].service} did not start ({failed[0].detail})"
                    + await self._journal_tail(shell, bot.name)
                )
            now = datetime.now(UTC)
            if all(
                s.state == RUNNING and (s.uptime_seconds(now) or 0) >= STABLE_S
                for s in status.services.values()
            ):
                for path in ("/readyz", "/health"):
                    code = await shell.http_get(port, path)
                    if code is not None and code < 500:
                        return
                with contextlib.suppress(Exception):
                    conn = await shell.connection()
                    _r, w = await asyncio.wait_for(conn.open_connection("127.0.0.1", port), 2)
                    w.close()
                    return
            await asyncio.sleep(0.3)
        raise RuntimeOperationError(
            f"{bot.name}: the gateway was not healthy within {HEALTH_TIMEOUT_S:.0f} s"
            + await self._journal_tail(shell, bot.name)
        )

    def _follower(self, shell: VMShell, bot: str) -> AuditFollower:
        f = self._followers.get(bot)
        if f is None or f.shell is not shell:
            f = AuditFollower(self.home, shell, bot)
            self._followers[bot] = f
        return f

    async def follow_audit(self, bot: BotConfig) -> None:
        """Start bringing the bot's audit files back (the TUI and --run call
        this through status/events; `up` starts it too)."""
        shell = await self._shell(bot.lima.vm)
        self._follower(shell, bot.name).start()

    async def down(self, bot: BotConfig) -> None:
        try:
            shell = await self._shell(bot.lima.vm)
        except RuntimeUnavailable:
            return  # no VM, or a stopped one: nothing runs
        units = " ".join(reversed(self._units(bot.name)))
        await shell.run(f"systemctl stop {units}", what=f"stopping {bot.name}")
        await self._stop_follower(bot.name)

    async def _stop_follower(self, bot: str) -> None:
        f = self._followers.pop(bot, None)
        if f is not None:
            await f.stop()

    async def rebuild(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        """Lima has no image: push code/ again and restart the stack."""
        await self.down(bot)
        await self.up(bot, progress)

    # --- status and events -------------------------------------------------
    async def status(self, bots: Sequence[BotConfig]) -> dict[str, BotStatus]:
        by_vm: dict[str, list[BotConfig]] = {}
        for b in bots:
            by_vm.setdefault(b.lima.vm, []).append(b)
        results = await asyncio.gather(
            *(self._status_vm(vm, group) for vm, group in by_vm.items()), return_exceptions=True
        )
        out: dict[str, BotStatus] = {}
        for (_vm, group), res in zip(by_vm.items(), results, strict=True):
            if isinstance(res, BaseException):
                if not isinstance(res, CftuiError):
                    raise res
                out.update({b.name: BotStatus(b.name, self.name, error=str(res)) for b in group})
            else:
                out.update(res)
        return out

    async def _status_vm(self, vm: str, bots: Sequence[BotConfig]) -> dict[str, BotStatus]:
        """One SSH command for every unit of every bot of one VM."""
        shell = self._shells.get(vm)
        if shell is None and (lima_home() / vm / "ssh.config").is_file():
            with contextlib.suppress(RuntimeUnavailable):
                shell = await self._shell(vm)  # a running VM answers without limactl
        if shell is None:
            inst = await self.limactl.instance(vm)
            if inst is None or not inst.running:
                why = "VM absent" if inst is None else f"VM {inst.status or 'stopped'}"
                state = MISSING if inst is None else STOPPED
                return {
                    b.name: BotStatus(
                        b.name,
                        self.name,
                        {s: ServiceStatus(s, state, detail=why) for s in SERVICES},
                    )
                    for b in bots
                }
            shell = await self._shell(vm, inst)
        units = " ".join(unit_name(s, b.name) for b in bots for s in SERVICES)
        try:
            # list-units is one D-Bus call for every unit; `systemctl show`
            # costs one per unit (160 ms for 40), so it is asked only for
            # the units whose state changed, and its answers are cached.
            res = await shell.run(
                f"systemctl list-units --all --plain --no-legend --full {units}; "
                f"echo @@killed; ls {KILLED_DIR} 2>/dev/null; echo @@bots; ls {CONF_DIR} 2>/dev/null",
                check=False,
                timeout=10,
                what="status",
                root=False,
            )
            listed, _, rest = res.out.partition("@@killed")
            killed_text, _, setup_text = rest.partition("@@bots")
            props = parse_list_units(listed)
            setup = set(setup_text.split())
            need = self._needs_show(vm, bots, props, setup)
            if need:
                shown = await shell.run(
                    f"systemctl show --timestamp=unix -p {SHOW_PROPS} {' '.join(need)}",
                    check=False,
                    timeout=10,
                    what="status",
                    root=False,
                )
                self._remember_show(vm, need, props, parse_show(shown.out))
        except RuntimeUnavailable:
            await self._drop_shell(vm)
            inst = await self.limactl.instance(vm)
            if inst is not None and inst.running:
                raise
            return await self._status_vm(vm, bots)
        killed = set(killed_text.split())
        return {
            b.name: BotStatus(
                b.name,
                self.name,
                {
                    s: service_status(s, props.get(unit_name(s, b.name)), b.name in killed)
                    for s in SERVICES
                },
            )
            for b in bots
        }

    def _needs_show(
        self,
        vm: str,
        bots: Sequence[BotConfig],
        props: dict[str, dict[str, str]],
        setup: set[str],
    ) -> list[str]:
        """Fill `props` from the cache where the state is unchanged; the units
        that need a `systemctl show` (start time, result)."""
        now = time.monotonic()
        need = []
        for b in bots:
            for s in SERVICES:
                unit = unit_name(s, b.name)
                p = props.get(unit)
                if p is None:
                    if b.name in setup:  # an inactive unit systemd has unloaded
                        props[unit] = {"Id": unit, "LoadState": "loaded",
                                       "ActiveState": "inactive", "SubState": "dead"}  # fmt: skip
                    continue
                cached = self._show_cache.get((vm, unit))
                state = (p["ActiveState"], p["SubState"])
                if cached and cached[0] == state and now - cached[1] < SHOW_TTL_S:
                    p.update(cached[2])
                else:
                    need.append(unit)
        return need

    def _remember_show(
        self,
        vm: str,
        units: list[str],
        props: dict[str, dict[str, str]],
        shown: dict[str, dict[str, str]],
    ) -> None:
        now = time.monotonic()
        for unit in units:
            got = shown.get(unit, {})
            extra = {k: got.get(k, "") for k in ("Result", "ActiveEnterTimestamp")}
            props[unit].update(extra)
            state = (props[unit]["ActiveState"], props[unit]["SubState"])
            self._show_cache[(vm, unit)] = (state, now, extra)

    async def events(self, bots: Sequence[BotConfig]) -> AsyncIterator[StateChange]:
        """State changes from systemd itself: PID 1's own journal entries about
        our units (started, stopped, failed, restarting) wake a status query of
        that bot; nothing polls."""
        by_vm: dict[str, list[BotConfig]] = {}
        for b in bots:
            by_vm.setdefault(b.lima.vm, []).append(b)
        queue: asyncio.Queue[StateChange] = asyncio.Queue()

        async def watch(vm: str, group: list[BotConfig]) -> None:
            by_name = {b.name: b for b in group}
            last: dict[tuple[str, str], str] = {}
            while True:
                try:
                    shell = await self._shell(vm)
                    for b in group:
                        self._follower(shell, b.name).start()
                    # The follower is attached before the states are read,
                    # so no change falls between the two.
                    conn = await shell.connection()
                    proc = await conn.create_process(
                        "sudo -n journalctl -f -n 0 -o json _PID=1 --no-pager",
                        stderr=asyncssh.DEVNULL,
                    )
                    seed = await self._status_vm(vm, group)
                    for st in seed.values():
                        for svc, ss in st.services.items():
                            last[(st.bot, svc)] = ss.state
                    async for line in proc.stdout:
                        try:
                            unit = str(json.loads(line).get("UNIT", ""))
                        except ValueError:
                            continue
                        hit = service_of_unit(unit)
                        if not hit or hit[1] not in by_name:
                            continue
                        st = (await self._status_vm(vm, [by_name[hit[1]]]))[hit[1]]
                        for svc, ss in st.services.items():
                            if last.get((st.bot, svc)) != ss.state:
                                last[(st.bot, svc)] = ss.state
                                await queue.put(
                                    StateChange(st.bot, svc, ss.state, datetime.now(UTC), ss.detail)
                                )
                except asyncio.CancelledError:
                    raise
                except Exception:
                    await self._drop_shell(vm)
                    await asyncio.sleep(2.0)

        tasks = [asyncio.create_task(watch(vm, g)) for vm, g in by_vm.items()]
        try:
            while True:
                yield await queue.get()
        finally:
            for t in tasks:
                t.cancel()

    async def logs(
        self, bot: BotConfig, service: str, *, follow: bool = True, tail: int = 200
    ) -> AsyncIterator[LogLine]:
        if service not in SERVICES:
            raise CftuiError(f"unknown service {service!r}: one of {', '.join(SERVICES)}")
        shell = await self._shell(bot.lima.vm)
        cmd = (
            f"exec journalctl -u {unit_name(service, bot.name)} -n {int(tail)} -o json "
            f"--output-fields=MESSAGE --no-pager" + (" -f" if follow else "")
        )
        async for line in shell.lines(cmd):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            msg = entry.get("MESSAGE", "")
            if isinstance(msg, list):  # journald sends non-UTF-8 messages as bytes
                msg = bytes(msg).decode(errors="replace")
            ts = None
            with contextlib.suppress(KeyError, ValueError, TypeError):
                ts = datetime.fromtimestamp(int(entry["__REALTIME_TIMESTAMP"]) / 1e6, UTC)
            yield LogLine(bot.name, service, str(msg), ts)

    # --- the kill switch ---------------------------------------------------
    async def kill(self, bot: BotConfig) -> KillReport:
        """nftables drop for the gateway's user first, then its unit killed, the
        rest stopped, then the VM stopped (forced after a grace period) unless
        another bot of that VM still runs.

        The kill switch kills every bot at once: the kills of one VM that
        arrive together are done as one batch, in one SSH round trip for the
        cut and the kill (one `systemctl kill` for every gateway), so ten bots
        cost about what one does."""
        report = KillReport(bot.name)
        self.kill_timings[bot.name] = {"start": time.monotonic()}
        vm = bot.lima.vm
        batch = self._kill_batches.get(vm)
        leader = batch is None
        if batch is None:
            batch = self._kill_batches[vm] = _KillBatch()
        batch.bots.append(bot)
        batch.reports[bot.name] = report
        if not leader:
            await batch.done.wait()
            return report
        try:
            await asyncio.sleep(BATCH_WINDOW_S)  # the other kills of this call join
            del self._kill_batches[vm]
            await self._kill_batch(vm, batch)
        finally:
            batch.done.set()
        return report

    async def _kill_batch(self, vm: str, batch: _KillBatch) -> None:
        bots, reports = batch.bots, batch.reports
        try:
            shell = await self._shell(vm)
        except RuntimeUnavailable:
            inst = await self.limactl.instance(vm)
            if inst is None or not inst.running:  # nothing runs: nothing to kill
                for r in reports.values():
                    r.network_cut = r.gateway_killed = True
                    r.already_gone = list(SERVICES)
                return
            shell = None
        names = [b.name for b in bots]
        cut_and_kill, stop_rest = kill_scripts(names)
        running_after = None
        if shell is not None:
            try:
                res = await shell.run(cut_and_kill, check=False, timeout=5, what="kill")
                now = time.monotonic()
                for n in names:
                    self.kill_timings[n]["dead"] = now
                parse_kill(res.out, names, reports, "gateway")
                rest = await shell.run(stop_rest, check=False, timeout=6, what="stopping the rest")
                running_after = parse_kill(rest.out, names, reports, "rest")
            except CftuiError as exc:
                for r in reports.values():
                    r.errors.append(f"{exc}; stopping the VM")
        for r in reports.values():
            if running_after is not None and not r.network_cut:
                # The chain is missing only if the bot was never set up here.
                r.errors.append("nftables drop rule not inserted (bot not set up in VM?)")
        for n in names:
            await self._stop_follower(n)
        if self.stop_vm_on_kill and not running_after:
            async with self._lock(vm):
                await self._drop_shell(vm)
                try:
                    forced = await self.limactl.stop(vm, grace_s=KILL_VM_GRACE_S)
                except CftuiError as exc:
                    for r in reports.values():
                        r.errors.append(str(exc))
                    return
                stopped = time.monotonic()
                for n, r in reports.items():
                    self.kill_timings[n]["vm_stopped"] = stopped
                    r.stopped.append(f"VM {vm}" + (" (forced)" if forced else ""))
                    # A stopped VM runs nothing: the in-VM steps' failures are moot.
                    r.network_cut = r.gateway_killed = True
                    r.errors = [e for e in r.errors if "stopping the VM" not in e]

    # --- the gateway alone ---------------------------------------------------
    async def gateway_running(self, bot: BotConfig) -> bool:
        try:
            shell = await self._shell(bot.lima.vm)
        except RuntimeUnavailable:
            return False
        res = await shell.run(f"systemctl is-active {unit_name('gateway', bot.name)}", check=False)
        return res.out.strip() == "active"

    async def stop_gateway(self, bot: BotConfig) -> None:
        shell = await self._shell(bot.lima.vm)
        await shell.run(
            f"systemctl stop {unit_name('gateway', bot.name)}", what="stopping the gateway"
        )

    async def start_gateway(self, bot: BotConfig) -> None:
        shell = await self._shell(bot.lima.vm)
        with self.gate(bot, "starting the gateway"):
            await shell.run(
                f"rm -f {KILLED_DIR}/{bot.name}; systemctl start {unit_name('gateway', bot.name)}",
                what="starting the gateway",
            )

    # --- state sync for snapshots ------------------------------------------
    async def pull_state(self, bot: BotConfig) -> None:
        """The VM's state/ to the host's, before a snapshot."""
        try:
            shell = await self._shell(bot.lima.vm)
        except RuntimeUnavailable:
            return  # VM stopped: the host copy is the last one pulled
        dest = self.home.state_dir(bot.name)
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)
        await rsync(
            shell,
            "-a",
            "--delete",
            "--no-owner",
            "--no-group",
            # The agent wrote this tree: no device or fifo of its making on the host.
            "--no-devices",
            "--no-specials",
            "--chmod=Du=rwx,go=,Fu=rw,go=",
            # Sent as the gateway's user: it reads nothing the agent could not.
            gateway_rsync_path(unix_user("gateway", bot.name)),
            *rsync_filter_args(),  # what the snapshot leaves out, left in the VM
            f"{shell.rsync_shell()[1]}:{SRV}/bots/{bot.name}/state/",
            f"{dest}/",
            what=f"{bot.name}'s state/",
        )

    async def push_state(self, bot: BotConfig) -> None:
        """The host's state/ to the VM's, after a restore."""
        try:
            shell = await self._shell(bot.lima.vm)
        except RuntimeUnavailable:
            # Pushed by the next start, before the VM's older state could win.
            self._pending_push(bot.name).touch(mode=0o600)
            return
        await self._push(shell, bot, "state", delete=True)

    def _pending_push(self, bot: str) -> Path:
        return self.home.bot_repo(bot) / ".lima-push-state"

    async def aclose(self) -> None:
        for name in list(self._followers):
            await self._stop_follower(name)
        for vm in list(self._shells):
            await self._drop_shell(vm)
