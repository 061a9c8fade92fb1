"""OpenClaw's state in a Lima VM pointed at the bot's loopback proxies
before a start, the Docker runtime's way (gateway.state_wiring decides what
is written, for both): JSON5 read as OpenClaw reads it, a bad file refused in
one line before anything is written, `openclaw.json`'s previous valid form
kept as `openclaw.json.known-good` and a `config` event recorded on the host.

Only the reads and writes are Lima's own: `state/` is the gateway's in the
VM, so it is listed, read and written as the gateway's user (lima.ssh), and
a link or special file in place of a file is refused, never followed.
"""

from __future__ import annotations

from shlex import quote

from cftui.fleet import BotConfig, FleetHome
from cftui.gateway.config import CONFIG_NAME, record_replacement
from cftui.gateway.state_wiring import (
    AGENTS_DIR,
    MODELS_JSON,
    WIRING_ACTOR,
    WIRING_REASON,
    plan_wiring,
)
from cftui.runtime.lima.plan import openclaw_config, openclaw_models_json, unix_user, vm_tree
from cftui.runtime.lima.ssh import VMShell


async def models_json_paths(shell: VMShell, user: str, state: str) -> list[str]:
    """`agents/<id>/agent/models.json` relative to `state`, as `user` finds
    them (a link among them is listed, then refused when it is read)."""
    agents = f"{state}/{AGENTS_DIR}"
    found = await shell.run(
        f"runuser -u {quote(user)} -- find {quote(agents)} -mindepth 3 -maxdepth 3 "
        f"-path {quote(f'{agents}/*/{MODELS_JSON}')} -print0 2>/dev/null || true",
        what="listing the agents' models.json",
    )
    return sorted(p[len(state) + 1 :] for p in found.out.split("\0") if p.startswith(state + "/"))


def _raw(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def _text(content: bytes | str) -> str:
    return content if isinstance(content, str) else content.decode()


async def wire_openclaw(
    home: FleetHome, shell: VMShell, bot: BotConfig, *, proxy_token: str, gateway_token: str
) -> None:
    """Point `openclaw.json` (and any per-agent models.json, which would win
    over it) in the VM's `state/` at the bot's own proxies."""
    state = vm_tree(bot.name, "state")
    user = unix_user("gateway", bot.name)
    config = await shell.read_file_as(user, f"{state}/{CONFIG_NAME}")
    models = {
        rel: _raw(await shell.read_file_as(user, f"{state}/{rel}"))
        for rel in await models_json_paths(shell, user, state)
    }
    wiring = plan_wiring(
        f"VM {shell.vm}: {state}",
        _raw(config),
        models,
        wire_config=lambda data: openclaw_config(
            data, bot, proxy_token=proxy_token, gateway_token=gateway_token
        ),
        wire_models=lambda data: openclaw_models_json(data, bot, proxy_token=proxy_token),
    )
    if wiring.config is not None:
        for name, content in wiring.config.files:
            await shell.write_file_as(user, f"{state}/{name}", _text(content))
        record_replacement(home, bot.name, wiring.config, reason=WIRING_REASON, actor=WIRING_ACTOR)
    for rel, text in wiring.models:
        await shell.write_file_as(user, f"{state}/{rel}", text)
