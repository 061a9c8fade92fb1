"""The Lima runtime: a bot's whole stack as systemd services in a Lima VM.

VM lifecycle goes through `limactl` (lima.ctl), everything inside the VM
through one reused asyncssh connection per VM (lima.ssh), files through
rsync over the same SSH settings (lima.sync), audit files back to the host
as they grow (lima.audit). What a bot looks like inside the VM is computed
in lima.plan; the VM side is `lima/` (template, provisioning scripts, units).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncssh

from cftui.deps import declared
from cftui.errors import CftuiError, RuntimeOperationError, RuntimeUnavailable
from cftui.fleet import BotConfig, FleetHome
from cftui.identity import recipient_of
from cftui.progress import Progress, ProgressEvent, no_progress
from cftui.proposal_tree import MAX_FILE_BYTES
from cftui.runtime import host_prep
from cftui.runtime.base import INSTALLER, KillReport, LogLine, Runtime
from cftui.runtime.lima.audit import AuditFollower
from cftui.runtime.lima.ctl import Instance, Limactl, lima_home
from cftui.runtime.lima.install import install_deps
from cftui.runtime.lima.kill_batch import KillBatch, KillBatches, kill_in_vm
from cftui.runtime.lima.plan import (
    CONF_DIR,
    EGRESS_ALLOW_FILE,
    KILLED_DIR,
    SRV,
    bot_env,
    egress_allow_file,
    gateway_argv,
    gateway_conf,
    gateway_secret_env,
    llm_secret_env,
    ports_for,
    service_of_unit,
    unit_name,
    unix_user,
    vm_tree,
    writable_paths,
)
from cftui.runtime.lima.ssh import VMShell
from cftui.runtime.lima.status import ShowCache, query_states, vm_down
from cftui.runtime.lima.sync import pull_proposals, pull_state, push_proposals, push_tree
from cftui.runtime.lima.units import parse_journal_line
from cftui.runtime.lima.vms import VMs
from cftui.runtime.lima.wiring import wire_openclaw
from cftui.runtime.status import MISSING, RUNNING, SERVICES, STOPPED, BotStatus, StateChange
from cftui.runtime.telemetry_env import telemetry_secret_env

HEALTH_TIMEOUT_S = 60.0
# A unit counts as up once it has stayed active this long (not crash-looping).
STABLE_S = 1.5
# The kill switch's own budget is 10 s (killswitch.KILL_TIMEOUT_S): the
# graceful VM stop gets part of it, then it is forced.
KILL_VM_GRACE_S = 4.0


class LimaRuntime(Runtime):
    """Bots as systemd services in Lima VMs (one VM may hold several bots)."""

    name = "lima"

    def __init__(self, home: FleetHome, limactl: Limactl | None = None) -> None:
        super().__init__(home)
        self.limactl = limactl or Limactl()
        self._shows = ShowCache()
        self.vms = VMs(self.limactl, self._shows)
        self._followers: dict[str, AuditFollower] = {}
        # When each kill step finished (monotonic), for the benchmark.
        self.kill_timings: dict[str, dict[str, float]] = {}
        self.stop_vm_on_kill = True
        self._kill_batches = KillBatches()

    def shell_argv(self, bot: BotConfig, service: str, *, tty: bool) -> list[str]:
        """`limactl shell` into the bot's VM, then a shell as the unit's user
        (the one its systemd unit runs as), in that user's home."""
        user = unix_user(service, bot.name)
        shell = ["sudo", "-u", user, "-H", "--", "/bin/sh"]
        return [self.limactl.path(), "shell", "--workdir", "/", bot.lima.vm, *shell]

    # --- the VM ----------------------------------------------------------
    async def check(self) -> None:
        self.limactl.path()

    @property
    def _shells(self) -> dict[str, VMShell]:
        """The open shell of each VM (the tests and bench count its connections)."""
        return self.vms.shells

    async def _shell(self, vm: str, inst: Instance | None = None) -> VMShell:
        return await self.vms.shell(vm, inst)

    async def _drop_shell(self, vm: str) -> None:
        await self.vms.drop(vm)

    async def ensure_vm(self, bot: BotConfig, progress: Progress = no_progress) -> VMShell:
        """Create and boot the bot's VM if needed, and set up what its bots share."""
        return await self.vms.ensure(bot, progress)

    # --- one bot ---------------------------------------------------------
    def _units(self, bot: str) -> list[str]:
        return [unit_name(s, bot) for s in ("llm-proxy", "egress", "gateway", "front")]

    def _plan(self, bot: BotConfig) -> dict[str, str]:
        """Every file the bot needs in the VM, rendered on the host first, so
        that a bad value is refused before the VM is touched."""
        name = bot.name
        host_env = host_prep.gateway_env(self.home, name)
        telemetry = self.home.telemetry()
        argv, image_env = gateway_argv(bot, self.home.code_dir(name))
        # The demo agent's direct probe: sshd answers everyone in the VM but
        # the gateway's user, whose packets nftables drops.
        probe = "http://127.0.0.1:22/" if bot.gateway == "generic" else ""
        return {
            "bot.env": bot_env(bot, recipient_of(self.home, name), self.home.prices(), telemetry),
            "egress.allow": egress_allow_file(bot),
            "gateway.conf": gateway_conf(bot, argv, image_env, probe),
            "gateway.env": gateway_secret_env(host_env),
            "llm.env": llm_secret_env(host_env, telemetry_secret_env(self.home, telemetry)),
            "providers.env": self.home.providers_env(name).read_text(encoding="utf-8"),
            "openclaw": "yes" if any("openclaw" in a for a in argv) else "",
            "proxy_token": host_env.get("CF_PROXY_TOKEN", ""),
            "gateway_token": host_env.get("OPENCLAW_GATEWAY_TOKEN", ""),
            "writable": "\n".join(writable_paths(bot)),
        }

    def _prepare_host(self, bot: BotConfig) -> None:
        """The host's side of the approved tree and its proposals: the
        writable paths made in `code/` (a link on the way refused) and the
        proposals tree seeded, which the VM's copy starts from."""
        host_prep.make_writable_paths(self.home, bot)
        host_prep.seed_proposals(self.home, bot)

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
        await shell.write_file(f"{conf}/{EGRESS_ALLOW_FILE}", plan["egress.allow"], mode="0644")
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
            (self.home.egress_control(name), "egress", "egress"),
        ):
            if host_file.is_file():
                await shell.write_file(
                    f"{SRV}/audit/{name}/{sub}/{host_file.name}",
                    host_file.read_text(encoding="utf-8"),
                    owner=unix_user(svc, name),
                )
        progress(ProgressEvent("sync", message=f"{name}: pushing code/"))
        await self._push_code(shell, bot, plan["writable"].split("\n") if plan["writable"] else [])
        await self._prepare_proposals(shell, bot)
        pending = self._pending_push(name)
        has_state = await shell.run(
            f'test -n "$(ls -A {vm_tree(name, "state")})"', check=False, what="state check"
        )
        if pending.exists():  # a restore happened while the VM was stopped
            await self._push(shell, bot, "state", delete=True)
            pending.unlink()
        elif has_state.code != 0:  # else the VM's state wins once it has one
            await self._push(shell, bot, "state", delete=False)
        if plan["openclaw"]:
            await self._wire_openclaw(shell, bot, plan)

    async def _push_code(self, shell: VMShell, bot: BotConfig, writable: list[str]) -> None:
        """The approved `code/` into the VM, read-only for the gateway but for
        its writable paths: those are the gateway's in the VM (as its state
        is) and are never overwritten or deleted by a push, only seeded with
        the files they lack. gateway-paths.sh checks the paths again and
        writes the drop-in that lets the unit write them."""
        name = bot.name
        code = self.home.code_dir(name)
        await push_tree(shell, code, name, "code", delete=True, keep=writable)
        await shell.write_file(
            f"{CONF_DIR}/{name}/writable", "".join(f"{p}\n" for p in writable), mode="0644"
        )
        res = await shell.run(
            f"bash /usr/local/lib/clawfactory/gateway-paths.sh {name} 2>&1", check=False
        )
        if res.code != 0:
            raise RuntimeOperationError(f"VM {shell.vm}: {res.reason()}")
        for rel in writable:
            await push_tree(shell, code / rel, name, f"code/{rel}", delete=False, only_new=True)
        note = host_prep.proposals_note(bot)
        if note is not None:
            await shell.write_file_as(
                unix_user("gateway", name),
                f"{vm_tree(name, 'code')}/{note}",
                host_prep.PROPOSALS_NOTE_TEXT,
                mode="0644",
            )

    async def _prepare_proposals(self, shell: VMShell, bot: BotConfig) -> None:
        """The VM's proposals tree: the host's pushed when the VM has none
        yet, or when cftui changed the host's while the VM was out of reach
        (a reject, a promotion); otherwise the VM's, which the agent writes,
        stands (the host's is pulled from it before every read)."""
        name = bot.name
        pending = self._pending_push(name, "proposals")
        empty = await shell.run(
            f'test -z "$(ls -A {vm_tree(name, "proposals")})"', check=False, what="proposals check"
        )
        if pending.exists() or empty.code == 0:
            await self._send_proposals(shell, bot)

    async def _wire_openclaw(self, shell: VMShell, bot: BotConfig, plan: dict[str, str]) -> None:
        """Point OpenClaw's own config (and any per-agent models.json, which
        would win over it) at the bot's loopback proxies, in the VM's state."""
        await wire_openclaw(
            self.home,
            shell,
            bot,
            proxy_token=plan["proxy_token"],
            gateway_token=plan["gateway_token"],
        )

    async def _push(self, shell: VMShell, bot: BotConfig, which: str, *, delete: bool) -> None:
        src = self.home.code_dir(bot.name) if which == "code" else self.home.state_dir(bot.name)
        await push_tree(shell, src, bot.name, which, delete=delete)

    async def up(self, bot: BotConfig, progress: Progress = no_progress) -> None:
        plan = self._plan(bot)
        await asyncio.to_thread(self._prepare_host, bot)
        shell = await self.ensure_vm(bot, progress)
        progress(ProgressEvent("setup", message=f"setting up {bot.name} in VM {bot.lima.vm}"))
        await self._prepare_bot(shell, bot, plan, progress)
        progress(ProgressEvent("start", message=f"starting {bot.name}'s services"))
        gateway = unit_name("gateway", bot.name)
        others = [u for u in self._units(bot.name) if u != gateway]
        # Declared dependencies install through the egress, so after it and
        # before the gateway; with none, everything starts at once.
        deps = await asyncio.to_thread(
            declared.approved_deps, self.home.code_dir(bot.name), bot.name
        )
        if deps.declared:
            await self._start_units(shell, bot, others)
            self._follower(shell, bot.name).start()
            try:
                done = await install_deps(self.home, shell, bot, progress)
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.down(bot))
                raise
            progress(ProgressEvent("deps", message=f"{bot.name}: {done}"))
            await self._start_units(shell, bot, [gateway])
        else:
            await self._start_units(shell, bot, [*others, gateway])
        self._follower(shell, bot.name).start()
        await self._wait_healthy(shell, bot)

    async def _start_units(self, shell: VMShell, bot: BotConfig, units: list[str]) -> None:
        names = " ".join(units)
        with self.gate(bot, "starting its services"):
            res = await shell.run(
                f"systemctl reset-failed {names} 2>/dev/null; systemctl start {names}", check=False
            )
        if res.code != 0:
            raise RuntimeOperationError(
                f"{bot.name}: starting its services failed: {res.reason()}"
                + await self._journal_tail(shell, bot.name)
            )

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

    async def unfollow_audit(self, bot: BotConfig) -> None:
        await self._stop_follower(bot.name)

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
        shell = self.vms.shells.get(vm)
        if shell is None and (lima_home() / vm / "ssh.config").is_file():
            with contextlib.suppress(RuntimeUnavailable):
                shell = await self._shell(vm)  # a running VM answers without limactl
        if shell is None:
            inst = await self.limactl.instance(vm)
            if inst is None or not inst.running:
                return vm_down(self.name, bots, inst)
            shell = await self._shell(vm, inst)
        try:
            return await query_states(self.name, shell, bots, self._shows)
        except RuntimeUnavailable:
            await self._drop_shell(vm)
            inst = await self.limactl.instance(vm)
            if inst is not None and inst.running:
                raise
            return await self._status_vm(vm, bots)

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
        if service == INSTALLER:
            async for kept in self.installer_logs(bot, follow=follow, tail=tail):
                yield kept
            return
        if service not in SERVICES:
            raise CftuiError(f"unknown service {service!r}: one of {', '.join(SERVICES)}")
        shell = await self._shell(bot.lima.vm)
        cmd = (
            f"exec journalctl -u {unit_name(service, bot.name)} -n {int(tail)} -o json "
            f"--output-fields=MESSAGE --no-pager" + (" -f" if follow else "")
        )
        async for line in shell.lines(cmd):
            entry = parse_journal_line(line)
            if entry is not None:
                yield LogLine(bot.name, service, *entry)

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
        await self._kill_batches.join(bot.lima.vm, bot, report, self._kill_batch)
        return report

    async def _kill_batch(self, vm: str, batch: KillBatch) -> None:
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
        running_after = None
        if shell is not None:
            running_after = await kill_in_vm(shell, names, reports, self.kill_timings)
        for n in names:
            await self._stop_follower(n)
        if self.stop_vm_on_kill and not running_after:
            async with self.vms.lock(vm):
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
        await pull_state(shell, bot.name, self.home.state_dir(bot.name))

    async def push_state(self, bot: BotConfig) -> None:
        """The host's state/ to the VM's, after a restore."""
        try:
            shell = await self._shell(bot.lima.vm)
        except RuntimeUnavailable:
            # Pushed by the next start, before the VM's older state could win.
            self._pending_push(bot.name).touch(mode=0o600)
            return
        await self._push(shell, bot, "state", delete=True)

    def _pending_push(self, bot: str, which: str = "state") -> Path:
        return self.home.bot_repo(bot) / f".lima-push-{which}"

    # --- the proposals tree -------------------------------------------------
    async def pull_proposals(self, bot: BotConfig) -> None:
        """The VM's proposals tree to the host's, before it is read. A VM that
        is not running changes nothing: the host's copy is the last pulled.
        While cftui's own change waits to be pushed (the VM was out of reach),
        the host's copy is the newer one: it is pushed first."""
        try:
            shell = await self._shell(bot.lima.vm)
        except RuntimeUnavailable:
            return
        if not await self._has_proposals(shell, bot):
            return  # never started in this VM: nothing of the agent's yet
        if self._pending_push(bot.name, "proposals").exists():
            await self._send_proposals(shell, bot)
        await pull_proposals(
            shell, bot.name, self.home.proposals_dir(bot.name), max_bytes=MAX_FILE_BYTES
        )

    async def push_proposals(self, bot: BotConfig) -> None:
        """The host's proposals tree to the VM's, after a reject or a
        promotion. Until it has arrived the host's copy is marked the newer
        one (no pull overwrites it; the next start or pull pushes it)."""
        self._pending_push(bot.name, "proposals").touch(mode=0o600)
        try:
            shell = await self._shell(bot.lima.vm)
        except RuntimeUnavailable:
            return
        if await self._has_proposals(shell, bot):
            await self._send_proposals(shell, bot)

    async def _has_proposals(self, shell: VMShell, bot: BotConfig) -> bool:
        tree = vm_tree(bot.name, "proposals")
        res = await shell.run(f"test -d {tree}", check=False, what="proposals check")
        return res.code == 0

    async def _send_proposals(self, shell: VMShell, bot: BotConfig) -> None:
        await push_proposals(shell, self.home.proposals_dir(bot.name), bot.name)
        self._pending_push(bot.name, "proposals").unlink(missing_ok=True)

    async def aclose(self) -> None:
        for name in list(self._followers):
            await self._stop_follower(name)
        await self.vms.aclose()
