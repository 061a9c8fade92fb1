"""The fleet home: where every file of every bot lives, and `fleet.toml`.

All paths of CONTRACTS §2 are named here and nowhere else, so a newcomer (or
a test) finds the layout in one place. `fleet.toml` is edited with tomlkit so
that the operator's comments and ordering survive every change we make; it
is read with the standard library's `tomllib` (a tenth of tomlkit's import
time), so the commands that only read it (`cftui list`, `cftui status`)
never load tomlkit, nor the writers' helpers (securefs).
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cftui.errors import BadBotName, FleetError, UnknownBot, UsageError
from cftui.hosts.config import HOST_NAME_RE, LOCAL, HostConfig, parse_hosts
from cftui.sizes import format_size, parse_size

if TYPE_CHECKING:
    import tomlkit
    import tomlkit.items

BOT_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
RUNTIMES = ("docker", "lima")
GATEWAY_KINDS = ("openclaw", "generic")
FIRST_GATEWAY_PORT = 18801
# How cftui talks to a running egress proxy (capture on/off, the allowlist)
# and how it answers: two files of the bot's audit dir, under these names on
# the host, in the egress container's /audit/ and in the Lima VM alike.
EGRESS_CONTROL_NAME = "egress.control.json"
EGRESS_STATS_NAME = "egress.stats.json"
# What the egress proxy refused, host by host (the inbox's egress requests):
# the proxy owns it, cftui only reads it.
EGRESS_REQUESTS_NAME = "egress.requests.json"
# The disk a Docker bot's code/ and state/ may fill together (`disk` in
# fleet.toml; "off" for none). The image is sparse: the host pays only for
# what the bot writes, up to this.
DEFAULT_DISK_BYTES = 4 << 30
MIN_DISK_BYTES = 32 << 20  # ext4's journal and tables need a few MiB
DISK_OFF = "off"
# What the gateway may write in its read-only approved tree, unless fleet.toml
# says otherwise (`writable`): `{bot}` is the bot's name.
DEFAULT_WRITABLE = ("workspace/memory", "workspace/{bot}_save")

RuntimeName = Literal["docker", "lima"]
GatewayKind = Literal["openclaw", "generic"]
# What a bot's money budget does once spent (`on_exhausted` in fleet.toml):
# the proxy always refuses further calls; "stop" also stops the bot through
# the lifecycle (cftui.spend), never the kill switch.
ON_EXHAUSTED = ("refuse", "stop")
OnExhausted = Literal["refuse", "stop"]
# The keys of a `[prices."MODEL"]` table: USD per million tokens.
PRICE_KEYS = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok")


def validate_bot_name(name: str) -> str:
    """Return `name` if it is a valid bot name, else raise BadBotName."""
    if not isinstance(name, str) or not BOT_NAME_RE.fullmatch(name):
        shown = name if len(str(name)) <= 40 else str(name)[:40] + "…"
        raise BadBotName(
            f"bad bot name {shown!r}: use 1-31 characters, a lowercase letter first, "
            "then lowercase letters, digits or '-'"
        )
    return name


def default_home() -> Path:
    """`$CLAWFACTORY_HOME`, else `$XDG_DATA_HOME/clawfactory`."""
    env = os.environ.get("CLAWFACTORY_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "clawfactory"


@dataclass(frozen=True)
class Limits:
    """Resource limits of the gateway (Docker: container; Lima: systemd unit)."""

    memory_mb: int = 2048
    cpus: float = 1.0
    pids: int = 512


@dataclass(frozen=True)
class Budget:
    """Operator limits enforced by the LLM proxy; 0 means no limit."""

    daily_tokens: int = 0
    requests_per_minute: int = 0


@dataclass(frozen=True)
class ModelPrice:
    """The operator's price of one model (`[prices."MODEL"]` in fleet.toml),
    USD per million tokens; it wins over the price database. A cache rate
    left out prices those tokens at the input rate."""

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None

    def as_dict(self) -> dict[str, float]:
        """The table as the LLM proxy reads it (`--prices`): set keys only."""
        return {k: v for k in PRICE_KEYS if (v := getattr(self, k)) is not None}


def _usd(what: str, value: Any) -> float:
    """A non-negative amount of money from fleet.toml; ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number of US dollars (got {value!r})")
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise ValueError(f"{what} must be a finite number, 0 or more (got {value!r})")
    return float(value)


def parse_prices(raw: Any) -> dict[str, ModelPrice]:
    """The top-level `[prices."MODEL"]` tables; FleetError (one line) for an
    unknown key, a missing rate, a negative or non-number one."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise FleetError('fleet.toml: prices must be tables, such as [prices."my-model"]')
    out: dict[str, ModelPrice] = {}
    for model, table in raw.items():
        where = f"fleet.toml: [prices.{model!r}]"
        if not isinstance(table, dict):
            raise FleetError(f"{where} must be a table of {', '.join(PRICE_KEYS)}")
        if not model or len(model) > 200 or not model.isprintable():
            raise FleetError(f"{where}: a model name is 1-200 printable characters")
        unknown = sorted(set(table) - set(PRICE_KEYS))
        if unknown:
            raise FleetError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(PRICE_KEYS)})")
        try:
            for need in PRICE_KEYS[:2]:
                if need not in table:
                    raise ValueError(f"{need} is required (USD per million tokens)")
            rates = {k: _usd(k, table[k]) for k in PRICE_KEYS if k in table}
        except ValueError as exc:
            raise FleetError(f"{where}: {exc}") from None
        out[str(model)] = ModelPrice(**rates)
    return out


@dataclass(frozen=True)
class Telemetry:
    """`[telemetry]` of fleet.toml: where every bot's LLM proxy sends a span
    per call (OTLP/HTTP), and whether the spans carry the scrubbed prompts.
    The collector's credentials, if it needs any, are a secret of their own
    (`FleetHome.otel_env`), never in fleet.toml."""

    otlp_endpoint: str | None = None  # as OTEL_EXPORTER_OTLP_ENDPOINT: spans go to .../v1/traces
    capture_content: bool = False
    service_name: str | None = None


TELEMETRY_KEYS = ("otlp_endpoint", "capture_content", "service_name")


def parse_telemetry(raw: Any) -> Telemetry:
    """The top-level `[telemetry]` table; FleetError (one line) for an unknown
    key, a URL that is not http(s), a flag that is not true or false."""
    if raw is None:
        return Telemetry()
    where = "fleet.toml: [telemetry]"
    if not isinstance(raw, dict):
        raise FleetError(f"{where} must be a table ({', '.join(TELEMETRY_KEYS)})")
    unknown = sorted(set(raw) - set(TELEMETRY_KEYS))
    if unknown:
        raise FleetError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(TELEMETRY_KEYS)})")
    endpoint = raw.get("otlp_endpoint")
    if endpoint is not None:
        from urllib.parse import urlsplit  # here: fleet.py is on every command's start path

        parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise FleetError(
                f"{where}: otlp_endpoint must be an http:// or https:// URL (OTLP/HTTP), "
                'such as "http://otel-collector:4318"'
            )
        if parts.username or parts.password or not endpoint.isprintable() or " " in endpoint:
            raise FleetError(
                f"{where}: otlp_endpoint holds no credential and no space; a collector's "
                "key goes in secrets/otel.env (OTEL_EXPORTER_OTLP_HEADERS=...)"
            )
    capture = raw.get("capture_content", False)
    if not isinstance(capture, bool):
        raise FleetError(f"{where}: capture_content must be true or false")
    service = raw.get("service_name")
    if service is not None and (
        not isinstance(service, str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", service)
    ):
        raise FleetError(f"{where}: service_name is 1-64 letters, digits, '.', '_' or '-'")
    return Telemetry(endpoint or None, capture, service)


@dataclass(frozen=True)
class LimaVM:
    """Sizing of a bot's Lima VM."""

    vm: str = "clawfactory"
    cpus: int = 2
    memory_gib: int = 4
    disk_gib: int = 30


@dataclass(frozen=True)
class BotConfig:
    """One bot's entry in fleet.toml."""

    name: str
    runtime: RuntimeName = "docker"
    gateway: GatewayKind = "openclaw"
    gateway_port: int = FIRST_GATEWAY_PORT
    capture: bool = False
    egress_allow: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    budget: Budget = field(default_factory=Budget)
    upstreams: dict[str, str] = field(default_factory=dict)
    lima: LimaVM = field(default_factory=LimaVM)
    disk_bytes: int | None = DEFAULT_DISK_BYTES  # None: "off", no bound
    # Paths in code/ the gateway writes at run time (None: DEFAULT_WRITABLE).
    writable: tuple[str, ...] | None = None
    # Money budgets, USD per UTC day / calendar month (0: none), enforced by
    # the LLM proxy; and what else happens once one is spent.
    daily_usd_budget: float = 0.0
    monthly_usd_budget: float = 0.0
    on_exhausted: OnExhausted = "refuse"
    # The Docker host it runs on (`[hosts.NAME]`; CONTRACTS §12).
    host: str = LOCAL

    @property
    def writable_paths(self) -> tuple[str, ...]:
        """The paths of `code/` the gateway may write, each bind-mounted
        read-write over its read-only approved tree."""
        if self.writable is not None:
            return self.writable
        return tuple(p.format(bot=self.name) for p in DEFAULT_WRITABLE)

    def to_toml(self) -> tomlkit.items.Table:
        import tomlkit

        t = tomlkit.table()
        t.add("runtime", self.runtime)
        if self.host != LOCAL:
            t.add("host", self.host)
        t.add("gateway", self.gateway)
        t.add("gateway_port", self.gateway_port)
        t.add("capture", self.capture)
        t.add("egress_allow", list(self.egress_allow))
        if self.runtime == "docker":  # a Lima bot's disk is its VM's (lima.disk_gib)
            t.add("disk", format_size(self.disk_bytes) if self.disk_bytes else DISK_OFF)
        if self.writable is not None:
            t.add("writable", list(self.writable))
        if self.daily_usd_budget:
            t.add("daily_usd_budget", self.daily_usd_budget)
        if self.monthly_usd_budget:
            t.add("monthly_usd_budget", self.monthly_usd_budget)
        if self.on_exhausted != "refuse":
            t.add("on_exhausted", self.on_exhausted)
        limits = tomlkit.table()
        limits.add("memory_mb", self.limits.memory_mb)
        limits.add("cpus", self.limits.cpus)
        limits.add("pids", self.limits.pids)
        t.add("limits", limits)
        budget = tomlkit.table()
        budget.add("daily_tokens", self.budget.daily_tokens)
        budget.add("requests_per_minute", self.budget.requests_per_minute)
        t.add("budget", budget)
        if self.upstreams:
            up = tomlkit.table()
            for k, v in self.upstreams.items():
                up.add(k, v)
            t.add("upstreams", up)
        if self.runtime == "lima":
            lima = tomlkit.table()
            lima.add("vm", self.lima.vm)
            lima.add("cpus", self.lima.cpus)
            lima.add("memory_gib", self.lima.memory_gib)
            lima.add("disk_gib", self.lima.disk_gib)
            t.add("lima", lima)
        return t


def parse_disk(value: Any) -> int | None:
    """`disk` of fleet.toml: bytes, or None for "off"; ValueError otherwise."""
    if value == DISK_OFF:
        return None
    if not isinstance(value, str):
        raise ValueError(f'disk must be a size in quotes, such as "4GiB", or "off" (got {value!r})')
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise ValueError(f'disk: {exc}, or "off"') from None
    if size < MIN_DISK_BYTES:
        raise ValueError(f"disk: {value!r} is too small: at least {format_size(MIN_DISK_BYTES)}")
    return size


def parse_writable(value: Any) -> tuple[str, ...]:
    """`writable` of fleet.toml: relative paths inside `code/`, each one
    normalised; ValueError (one line) for anything that could reach out of
    it or into its git. Links on the way are refused when the directories
    are made (securefs.make_agent_dirs), where the tree is read."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError('writable must be a list of paths in code/, such as ["workspace/memory"]')
    out: list[str] = []
    for raw in value:
        parts = raw.split("/")
        if raw.startswith("/") or not raw:
            raise ValueError(f"writable: {raw!r} must be a relative path inside code/")
        parts = [p for p in parts if p not in ("", ".")]
        if not parts or ".." in parts:
            raise ValueError(f"writable: {raw!r} must stay inside code/ (no '..')")
        if parts[0] == ".git":
            raise ValueError(f"writable: {raw!r} is the approved tree's git: never writable")
        if any("\0" in p for p in parts):
            raise ValueError(f"writable: {raw!r} holds a NUL byte")
        path = "/".join(parts)
        if path not in out:
            out.append(path)
    return tuple(out)


def _bot_from_toml(name: str, raw: Any) -> BotConfig:
    """Build a BotConfig from its table, refusing wrong types with one line."""
    if not isinstance(raw, dict):
        raise FleetError(f"fleet.toml: [bots.{name}] must be a table")
    try:
        runtime = str(raw.get("runtime", "docker"))
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}")
        gateway = str(raw.get("gateway", "openclaw"))
        if gateway not in GATEWAY_KINDS:
            raise ValueError(f"gateway must be one of {', '.join(GATEWAY_KINDS)}")
        limits = dict(raw.get("limits", {}))
        budget = dict(raw.get("budget", {}))
        lima = dict(raw.get("lima", {}))
        on_exhausted = raw.get("on_exhausted", "refuse")
        if on_exhausted not in ON_EXHAUSTED:
            raise ValueError(f"on_exhausted must be one of {', '.join(ON_EXHAUSTED)}")
        host = raw.get("host", LOCAL)
        if not isinstance(host, str) or not HOST_NAME_RE.fullmatch(host):
            raise ValueError("host must name a [hosts.NAME] table, or be 'local'")
        if host != LOCAL and runtime != "docker":
            raise ValueError("only a docker bot can run on another host")
        allow = raw.get("egress_allow", [])
        if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
            raise ValueError("egress_allow must be a list of host patterns")
        return BotConfig(
            name=name,
            runtime=runtime,  # type: ignore[arg-type]  # checked against RUNTIMES above
            gateway=gateway,  # type: ignore[arg-type]  # checked against GATEWAY_KINDS above
            gateway_port=int(raw.get("gateway_port", FIRST_GATEWAY_PORT)),
            capture=bool(raw.get("capture", False)),
            egress_allow=tuple(str(a) for a in allow),
            limits=Limits(
                memory_mb=int(limits.get("memory_mb", Limits.memory_mb)),
                cpus=float(limits.get("cpus", Limits.cpus)),
                pids=int(limits.get("pids", Limits.pids)),
            ),
            budget=Budget(
                daily_tokens=int(budget.get("daily_tokens", 0)),
                requests_per_minute=int(budget.get("requests_per_minute", 0)),
            ),
            upstreams={str(k): str(v) for k, v in dict(raw.get("upstreams", {})).items()},
            lima=LimaVM(
                vm=str(lima.get("vm", LimaVM.vm)),
                cpus=int(lima.get("cpus", LimaVM.cpus)),
                memory_gib=int(lima.get("memory_gib", LimaVM.memory_gib)),
                disk_gib=int(lima.get("disk_gib", LimaVM.disk_gib)),
            ),
            disk_bytes=parse_disk(raw.get("disk", format_size(DEFAULT_DISK_BYTES))),
            writable=parse_writable(raw["writable"]) if "writable" in raw else None,
            daily_usd_budget=_usd("daily_usd_budget", raw.get("daily_usd_budget", 0.0)),
            monthly_usd_budget=_usd("monthly_usd_budget", raw.get("monthly_usd_budget", 0.0)),
            on_exhausted=str(on_exhausted),  # type: ignore[arg-type]  # checked above
            host=host,
        )
    except (TypeError, ValueError) as exc:
        raise FleetError(f"fleet.toml: [bots.{name}]: {exc}") from None


class FleetHome:
    """The paths of a fleet home (CONTRACTS §2) and access to fleet.toml."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_home()

    # --- paths -----------------------------------------------------------
    @property
    def fleet_toml(self) -> Path:
        return self.root / "fleet.toml"

    @property
    def fleet_toml_cache(self) -> Path:
        """fleet.toml parsed, under its stamps (`toml_cache`): ours, 0600."""
        return self.root / ".fleet.toml.json"

    @property
    def events_log(self) -> Path:
        return self.root / "audit" / "events.jsonl"

    @property
    def locks_dir(self) -> Path:
        """Kill-switch locks, one file a bot (see killswitch.py)."""
        return self.root / "locks"

    def bot_repo(self, bot: str, *, mount: bool = True) -> Path:
        """The bot's tree (code/, state/). Every path into it comes from here,
        so this is where a tree on a disk image that is not mounted (after a
        reboot) is mounted, or refused in one line, before anyone reads the
        empty directory under it (`loopdisk.require_tree`). `mount=False`
        only names the path (to show it, or for the disk code itself)."""
        tree = self.root / "bot_repos" / validate_bot_name(bot)
        if mount:
            from cftui import loopdisk

            if loopdisk.marker_visible(tree):  # one lstat on every call
                loopdisk.require_tree(self.disk_image(bot), tree)
        return tree

    def code_dir(self, bot: str, *, mount: bool = True) -> Path:
        return self.bot_repo(bot, mount=mount) / "code"

    def workspace_dir(self, bot: str) -> Path:
        return self.code_dir(bot) / "workspace"

    def state_dir(self, bot: str, *, mount: bool = True) -> Path:
        return self.bot_repo(bot, mount=mount) / "state"

    def disk_image(self, bot: str) -> Path:
        """The ext4 image that holds a Docker bot's tree (`disk` in
        fleet.toml): outside every tree the agent can write, 0600 in a 0700
        directory."""
        return self.root / "disks" / f"{validate_bot_name(bot)}.ext4"

    def proposals_dir(self, bot: str) -> Path:
        """The gateway's proposals work tree (CONTRACTS §9): a copy of the
        approved `code/` it may write, with its own git; untrusted input."""
        return self.bot_repo(bot) / "proposals"

    def proposals_index(self, bot: str) -> Path:
        """cftui's stat cache of the proposals tree: beside it, never in it
        (nothing the gateway can write may vouch for a file's content)."""
        return self.bot_repo(bot) / ".proposals-index"

    def approved_config(self, bot: str) -> Path:
        """The openclaw.json the operator last approved: out of `state/`, so
        the gateway cannot rewrite it; holds the proxy token, so 0600."""
        return self.secrets_dir(bot) / "openclaw.approved.json"

    def secrets_dir(self, bot: str) -> Path:
        return self.root / "secrets" / validate_bot_name(bot)

    def gateway_env(self, bot: str) -> Path:
        return self.secrets_dir(bot) / "gateway.env"

    def providers_env(self, bot: str) -> Path:
        return self.secrets_dir(bot) / "providers.env"

    def snapshot_key(self, bot: str) -> Path:
        return self.secrets_dir(bot) / "snapshot.key"

    def snapshots_dir(self, bot: str) -> Path:
        return self.root / "snapshots" / validate_bot_name(bot)

    def audit_dir(self, bot: str) -> Path:
        return self.root / "audit" / validate_bot_name(bot)

    def installer_log(self, bot: str) -> Path:
        """The last dependency install's output (cftui writes it, 0600 in a
        0700 directory): outside every tree the gateway writes and outside
        audit/, which the proxies write; never mounted anywhere."""
        return self.root / "logs" / validate_bot_name(bot) / "installer.log"

    def traffic_log(self, bot: str) -> Path:
        return self.audit_dir(bot) / "traffic.jsonl"

    def capture_log(self, bot: str) -> Path:
        return self.audit_dir(bot) / "traffic.enc.jsonl"

    def capture_keys(self, bot: str) -> Path:
        return self.audit_dir(bot) / "capture.keys"

    def scrub_rules(self, bot: str) -> Path:
        return self.audit_dir(bot) / "scrub_rules.json"

    def egress_control(self, bot: str) -> Path:
        return self.audit_dir(bot) / EGRESS_CONTROL_NAME

    def egress_stats(self, bot: str) -> Path:
        return self.audit_dir(bot) / EGRESS_STATS_NAME

    def egress_requests(self, bot: str) -> Path:
        """The egress proxy's ledger of refused requests (it writes, we read)."""
        return self.audit_dir(bot) / EGRESS_REQUESTS_NAME

    def inbox_dir(self, bot: str) -> Path:
        """cftui's own state of the bot's inbox (0700): out of every tree the
        gateway writes and of audit/, which the egress proxy writes."""
        return self.root / "proposals" / validate_bot_name(bot)

    def egress_dismissals(self, bot: str) -> Path:
        """The egress requests the operator dismissed or allowed, and when."""
        return self.inbox_dir(bot) / "egress-dismissed.json"

    # --- fleet.toml ------------------------------------------------------
    def exists(self) -> bool:
        return self.fleet_toml.is_file()

    def _read_text(self) -> str | None:
        """fleet.toml's text, None when there is none yet."""
        try:
            return self.fleet_toml.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FleetError(f"cannot read {self.fleet_toml}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise FleetError(f"{self.fleet_toml} is not valid TOML: {exc.reason}") from None

    def _check_bots(self, bots: Any) -> None:
        if bots is not None and not isinstance(bots, dict):
            raise FleetError(f"{self.fleet_toml}: 'bots' must be a table")

    def _read_doc(self) -> tomlkit.TOMLDocument:
        """fleet.toml for editing: comments and order kept (tomlkit)."""
        import tomlkit
        from tomlkit.exceptions import TOMLKitError

        text = self._read_text()
        if text is None:
            return tomlkit.document()
        try:
            doc = tomlkit.parse(text)
        except TOMLKitError as exc:
            raise FleetError(f"{self.fleet_toml} is not valid TOML: {exc}") from None
        self._check_bots(doc.get("bots"))
        return doc

    def _read_data(self) -> dict[str, Any]:
        """fleet.toml as plain data, for every reader (tomllib, through its
        parse cache: `toml_cache`)."""
        from cftui import toml_cache

        try:
            data = toml_cache.load(self.fleet_toml, self.fleet_toml_cache)
        except OSError as exc:
            raise FleetError(f"cannot read {self.fleet_toml}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise FleetError(f"{self.fleet_toml} is not valid TOML: {exc.reason}") from None
        except ValueError as exc:  # tomllib.TOMLDecodeError, not imported when cached
            raise FleetError(f"{self.fleet_toml} is not valid TOML: {exc}") from None
        if data is None:
            return {}
        self._check_bots(data.get("bots"))
        return data

    def bots(self) -> dict[str, BotConfig]:
        """Every bot of fleet.toml, in file order; each one's host exists."""
        doc = self._read_data()
        hosts = parse_hosts(doc.get("hosts"))
        out: dict[str, BotConfig] = {}
        for name, raw in dict(doc.get("bots", {})).items():
            if not BOT_NAME_RE.fullmatch(name):
                raise FleetError(f"fleet.toml: [bots.{name}] is not a valid bot name")
            bot = _bot_from_toml(name, raw)
            if bot.host not in hosts:
                raise FleetError(
                    f"fleet.toml: [bots.{name}]: host {bot.host!r} has no [hosts.{bot.host}] "
                    f"table (hosts: {', '.join(hosts)})"
                )
            out[name] = bot
        return out

    def hosts(self) -> dict[str, HostConfig]:
        """Every host of the fleet, `local` first (CONTRACTS §12), validated."""
        return parse_hosts(self._read_data().get("hosts"))

    def host(self, name: str) -> HostConfig:
        """One host; UsageError naming the known ones if there is no such host."""
        hosts = self.hosts()
        if name not in hosts:
            raise UsageError(
                f"no host named {name!r} in {self.fleet_toml} (hosts: {', '.join(hosts)}); "
                f'add [hosts.{name}] url = "ssh://user@server[:port]"'
                if HOST_NAME_RE.fullmatch(name)
                else f"bad host name {name[:40]!r}: use a [hosts.NAME] of {self.fleet_toml}"
            )
        return hosts[name]

    def document(self) -> dict[str, Any]:
        """fleet.toml as plain data, read-only: for a module that owns a
        table of its own (the controller's `[controller]` and
        `[bots.NAME.controller]`) and parses it itself."""
        return self._read_data()

    def telemetry(self) -> Telemetry:
        """Where the LLM proxies send their spans (`[telemetry]`), validated."""
        return parse_telemetry(self._read_data().get("telemetry"))

    @property
    def otel_env(self) -> Path:
        """`secrets/otel.env` (0600, optional): the collector's headers
        (`OTEL_EXPORTER_OTLP_HEADERS=authorization=Basic%20...`), for every bot."""
        return self.root / "secrets" / "otel.env"

    def prices(self) -> dict[str, ModelPrice]:
        """The operator's prices per model (`[prices."MODEL"]`), validated;
        they win over the price database in the LLM proxy."""
        return parse_prices(self._read_data().get("prices"))

    def bot(self, name: str) -> BotConfig:
        """One bot's config; UnknownBot if fleet.toml does not list it."""
        validate_bot_name(name)
        bots = self.bots()
        if name not in bots:
            hint = f" (bots: {', '.join(bots)})" if bots else " (run `cftui init " + name + "`)"
            raise UnknownBot(f"no bot named {name!r} in {self.fleet_toml}{hint}")
        return bots[name]

    def resolve_bots(self, names: list[str] | None) -> list[BotConfig]:
        """The named bots (validated), or every bot when `names` is empty."""
        if not names:
            return list(self.bots().values())
        return [self.bot(n) for n in names]

    @contextmanager
    def editing(self) -> Iterator[tomlkit.TOMLDocument]:
        """Read-modify-write fleet.toml under an exclusive lock, atomically."""
        import tomlkit

        from cftui.securefs import atomic_write_private, make_private_dirs

        make_private_dirs(self.root)
        lock_path = self.root / ".fleet.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            doc = self._read_doc()
            yield doc
            atomic_write_private(self.fleet_toml, tomlkit.dumps(doc))
        finally:
            os.close(fd)

    def add_bot(self, config: BotConfig) -> None:
        """Append a new bot's table; refuses a name already present."""
        import tomlkit

        with self.editing() as doc:
            if "bots" not in doc:
                doc.add(tomlkit.comment("The bots of this fleet; `cftui init` adds one."))
                doc.add("bots", tomlkit.table(is_super_table=True))
            if config.name in doc["bots"]:
                raise UsageError(f"bot {config.name!r} already exists in {self.fleet_toml}")
            doc["bots"][config.name] = config.to_toml()

    def remove_bot(self, name: str) -> None:
        """Drop a bot's table from fleet.toml, keeping the rest as written."""
        self.bot(name)
        with self.editing() as doc:
            del doc["bots"][name]

    def update_bot(self, name: str, **changes: Any) -> BotConfig:
        """Change top-level keys of a bot's table, keeping the rest as written."""
        self.bot(name)
        with self.editing() as doc:
            table = doc["bots"][name]
            for key, value in changes.items():
                table[key] = list(value) if isinstance(value, tuple) else value
            updated = _bot_from_toml(name, table)
        return updated

    def next_gateway_port(self) -> int:
        used = {b.gateway_port for b in self.bots().values()}
        port = FIRST_GATEWAY_PORT
        while port in used:
            port += 1
        return port
