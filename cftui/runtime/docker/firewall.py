"""Keeping a bot's internal network off the host itself.

An internal Docker network has no route out, but its bridge has an address
on the host and the gateway a route to it: any host service bound to
`0.0.0.0` (or to that address) is one connect away, and the host's INPUT
chain accepts. Docker 28 can create an internal bridge with no host address
(`com.docker.network.bridge.gateway_mode_ipv4=isolated`); on older engines
(20.10 here) the runtime drops what the bridge sends to the host with rules
of its own, in `iptables` and `ip6tables`:

    -A INPUT -i br-<id> -m conntrack ! --ctstate ESTABLISHED,RELATED
        -m comment --comment cftui-host-isolation:<bot> -j DROP

Replies to connections the host opens (the runtime's health probes of the
proxies and the gateway) are still let in; nothing the containers open
towards the host is. Traffic between the bot's containers is bridged, not
delivered to the host, so INPUT never sees it, and Docker's embedded DNS
answers inside each container's namespace. The comment names the bot, so
the rules are found (and removed) by it alone, even once the network and
its interface are gone. They live until a reboot; each start adds them back.

The rules go where the engine runs: on this machine through `LocalShell`,
on another host through that host's SSH link (`HostShell`, the same
commands run by the host's own iptables). Nothing else here differs.
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import subprocess
from typing import Any, Protocol

from cftui.errors import RuntimeOperationError

ISOLATED_OPTIONS = {
    "com.docker.network.bridge.gateway_mode_ipv4": "isolated",
    "com.docker.network.bridge.gateway_mode_ipv6": "isolated",
}
_BRIDGE_NAME_OPT = "com.docker.network.bridge.name"
COMMENT_PREFIX = "cftui-host-isolation:"
_CHAIN = "INPUT"
_TIMEOUT_S = 20


def engine_isolates(api: Any) -> bool:
    """Whether the engine can give an internal bridge no host address (28+)."""
    try:
        version = str(api.version().get("Version") or "")
        return int(version.split(".", 1)[0]) >= 28
    except (ValueError, AttributeError):
        return False


def internal_network_options(api: Any) -> dict[str, str]:
    """Driver options for a bot's internal network on this engine."""
    return dict(ISOLATED_OPTIONS) if engine_isolates(api) else {}


def comment(bot: str) -> str:
    return f"{COMMENT_PREFIX}{bot}"


def bridge_interface(network: dict[str, Any]) -> str:
    """The host interface of a bridge network (`br-` + 12 hex of its id)."""
    options = network.get("Options") or {}
    return options.get(_BRIDGE_NAME_OPT) or f"br-{network['Id'][:12]}"


def _rule(iface: str, bot: str) -> list[str]:
    return [
        "-i",
        iface,
        "-m",
        "conntrack",
        "!",
        "--ctstate",
        "ESTABLISHED,RELATED",
        "-m",
        "comment",
        "--comment",
        comment(bot),
        "-j",
        "DROP",
    ]


class HostShell(Protocol):
    """Where the rules are run: the host whose engine made the network."""

    def which(self, tool: str) -> str | None: ...

    def has_ipv6(self) -> bool: ...

    def is_root(self) -> bool: ...

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run argv there (blocking); OSError or TimeoutExpired when it cannot."""
        ...


class LocalShell:
    """This machine."""

    def which(self, tool: str) -> str | None:
        return shutil.which(tool)

    def has_ipv6(self) -> bool:
        return os.path.exists("/proc/net/if_inet6")

    def is_root(self) -> bool:
        return os.geteuid() == 0

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )


LOCAL = LocalShell()


def _tools(shell: HostShell) -> list[str]:
    """iptables, and ip6tables when the kernel has IPv6."""
    return ["iptables", "ip6tables"] if shell.has_ipv6() else ["iptables"]


def _run(
    shell: HostShell, tool: str, args: list[str], what: str
) -> subprocess.CompletedProcess[str]:
    path = shell.which(tool)
    if path is None:
        raise RuntimeOperationError(
            f"{what}: {tool} is not installed (apt-get install iptables), and this Docker "
            "engine (< 28) cannot isolate an internal network from the host by itself"
        )
    try:
        return shell.run([path, "-w", "5", *args], _TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeOperationError(f"{what}: {tool} did not run: {exc}") from None


def _refused(
    shell: HostShell, tool: str, proc: subprocess.CompletedProcess[str], what: str
) -> RuntimeOperationError:
    lines = (proc.stderr or proc.stdout or "").strip().splitlines()
    why = lines[-1] if lines else f"exit {proc.returncode}"
    hint = " (run cftui, or log in to that host, as root)" if not shell.is_root() else ""
    return RuntimeOperationError(f"{what}: {tool} refused: {' '.join(why.split())}{hint}")


def _tagged(shell: HostShell, tool: str, bot: str, what: str) -> list[tuple[str, list[str]]]:
    """This bot's rules in INPUT: (their interface, the arguments that delete them)."""
    proc = _must(shell, tool, ["-S", _CHAIN], what)
    found = []
    for line in proc.stdout.splitlines():
        words = shlex.split(line)
        if words[:2] != ["-A", _CHAIN]:
            continue
        pairs = list(itertools.pairwise(words))
        if ("--comment", comment(bot)) in pairs:
            iface = next((b for a, b in pairs if a == "-i"), "")
            found.append((iface, ["-D", *words[1:]]))
    return found


def isolate_host(api: Any, bot: str, network: str, shell: HostShell = LOCAL) -> None:
    """Make sure nothing on `network` can open a connection to the host.

    Idempotent: an engine-isolated network needs nothing; otherwise the rule
    for the network's current interface is kept (checked with `-C`) and any
    stale one (for an older network of the same bot) removed.
    """
    net = api.inspect_network(network)
    options = net.get("Options") or {}
    if all(options.get(k) == v for k, v in ISOLATED_OPTIONS.items()):
        return
    iface = bridge_interface(net)
    want = _rule(iface, bot)
    what = f"cannot keep {network} off the host"
    for tool in _tools(shell):
        for rule_iface, rule in _tagged(shell, tool, bot, what):
            if rule_iface != iface:
                _must(shell, tool, rule, what)
        if _run(shell, tool, ["-C", _CHAIN, *want], what).returncode == 0:
            continue
        _must(shell, tool, ["-I", _CHAIN, "1", *want], what)


def _must(
    shell: HostShell, tool: str, args: list[str], what: str
) -> subprocess.CompletedProcess[str]:
    """Run the tool; its result, or a one-line error if it refused."""
    proc = _run(shell, tool, args, what)
    if proc.returncode != 0:
        raise _refused(shell, tool, proc, what)
    return proc


def release_host(bot: str, shell: HostShell = LOCAL) -> None:
    """Remove every rule `isolate_host` added for this bot."""
    what = f"cannot remove the host-isolation rules of {bot}"
    for tool in _tools(shell):
        if shell.which(tool) is None:
            continue
        for _, rule in _tagged(shell, tool, bot, what):
            _must(shell, tool, rule, what)
