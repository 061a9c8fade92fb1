"""The host side of a bot's start: the gateway's environment file read and
checked (both runtimes), and for the Docker runtime, whose `state/` and
`code/` are on the host, the proxy wiring written into OpenClaw's state,
`code/.git` checked, and `state/` and `code/` handed to the gateway's user.

All of it happens inside trees the gateway can write, as root when cftui
runs as root, so every read, write and chown goes through `securefs`'s
agent-tree helpers (no link followed, no special file or hard link read or
rewritten) and a refusal is one line saying what to do.
"""

from __future__ import annotations

import os
import stat

from cfproxies.envfile import read_env_file

from cftui import hostgit
from cftui.errors import FleetError, ProposalError, RuntimeOperationError
from cftui.fleet import BotConfig, FleetHome
from cftui.gateway import config as gateway_config
from cftui.gateway.state_wiring import (
    AGENTS_DIR,
    WIRING_ACTOR,
    WIRING_REASON,
    models_json_of,
    plan_wiring,
)
from cftui.gateway.wiring import PROPOSALS_MOUNT, wire_models_json, wire_openclaw_config
from cftui.proposal_tree.seed import ensure_seeded
from cftui.runtime.gateway_uid import gateway_user
from cftui.securefs import (
    UnsafeFile,
    agent_dir,
    list_agent_dir,
    make_agent_dirs,
    own_tree,
    write_agent_file,
)

# The note that tells the agent how it changes its own code. It goes in its
# memory (a writable path OpenClaw reads as workspace notes), never in the
# proposals tree, where it would be a proposal itself.
PROPOSALS_NOTE = "workspace/memory/cftui-proposals.md"
PROPOSALS_NOTE_TEXT = f"""# How to change your own code or configuration

Your workspace under /code is the approved revision: it is read-only, except
`memory/` and the paths your operator made writable. To change anything else
(a skill, SOUL.md, TOOLS.md, a tool), write the new version at the same path
under {PROPOSALS_MOUNT} (for example {PROPOSALS_MOUNT}/workspace/skills/NAME/SKILL.md).
{PROPOSALS_MOUNT} starts as a copy of /code; committing there is optional. A human
reviews what differs and promotes it (or rejects it); after a promotion the
change is under /code when you restart.
"""


def gateway_env(home: FleetHome, bot: str) -> dict[str, str]:
    """The bot's `gateway.env`, which must hold the proxy token the gateway
    presents instead of a provider key."""
    path = home.gateway_env(bot)
    try:
        values = read_env_file(path)
    except OSError as exc:
        raise FleetError(
            f"cannot read {path}: {exc.strerror} (was {bot} made with `cftui init`?)"
        ) from None
    if not values.get("CF_PROXY_TOKEN"):
        raise FleetError(f"{path} has no CF_PROXY_TOKEN: the gateway could not use the proxy")
    return values


def models_json_paths(home: FleetHome, bot: str) -> list[str]:
    """`agents/<id>/agent/models.json` for each agent directory in `state/`,
    relative to it (a link among them is refused when it is read)."""
    return [models_json_of(agent) for agent in list_agent_dir(home.state_dir(bot), AGENTS_DIR)]


def wire_openclaw(home: FleetHome, bot: BotConfig, env: dict[str, str]) -> None:
    """CONTRACTS §4: OpenClaw ignores env on many paths; its config holds it,
    and a per-agent `models.json` (which would win over it) is rewritten too
    (gateway.state_wiring decides what; this reads and writes on the host)."""
    token = env["CF_PROXY_TOKEN"]
    read = gateway_config.read_state_file
    wiring = plan_wiring(
        str(home.state_dir(bot.name)),
        read(home, bot.name, gateway_config.CONFIG_NAME),
        {rel: read(home, bot.name, rel) for rel in models_json_paths(home, bot.name)},
        wire_config=lambda config: wire_openclaw_config(
            config, proxy_token=token, gateway_token=env.get("OPENCLAW_GATEWAY_TOKEN", "")
        ),
        wire_models=lambda data: wire_models_json(data, proxy_token=token),
    )
    if wiring.config is not None:
        gateway_config.write_replacement(
            home, bot.name, wiring.config, reason=WIRING_REASON, actor=WIRING_ACTOR
        )
    for rel, text in wiring.models:
        gateway_config.write_state_file(home, bot.name, rel, text)


def check_gitdir(home: FleetHome, bot: str) -> None:
    """`code/.git` must be the operator's real directory: the gateway spec
    mounts it read-only over `/code/.git`, and host git runs only there."""
    try:
        hostgit.verify_gitdir(home.code_dir(bot))
    except hostgit.GitError as exc:
        raise RuntimeOperationError(f"{bot}: {exc}") from None


def hand_to_gateway(home: FleetHome, bot: BotConfig) -> None:
    """Let the gateway's user own what it writes: `state/`, and in `code/`
    only its writable paths (each a bind mount over the read-only tree).

    Only needed when cftui runs as root (the gateway then runs as its own
    uid, gateway_uid.GATEWAY_UID). The rest of the approved tree stays as
    git wrote it (root's, world-readable): the gateway reads it read-only, so
    a start never walks a big `code/`. `code/` itself and `code/.git` stay
    root's, with the gateway's group allowed in `code/`, so that host git in
    the checkout never runs in a repository the gateway owns. Each writable
    path is reached by descriptor (a link on the way is refused by
    `make_writable_paths`, which runs first). A file with several names is
    not re-owned (one of its names may be outside). The proposals tree's
    top is `prepare_proposals`'s (the seed needs its owner first).
    """
    if os.geteuid() != 0:
        return
    uid, gid = gateway_user()
    code, state = home.code_dir(bot.name), home.state_dir(bot.name)
    own_tree(state, uid, gid)
    with agent_dir(code) as fd:
        assert fd is not None  # bind_paths checked it exists
        st = os.fstat(fd)
        if st.st_gid != gid:
            os.fchown(fd, st.st_uid, gid)
        if stat.S_IMODE(st.st_mode) != 0o770:
            os.fchmod(fd, 0o770)  # code/ itself is the host's path, not the gateway's
    for rel in bot.writable_paths:
        try:
            own_tree(code, uid, gid, reldir=rel)
        except (UnsafeFile, NotADirectoryError, FileNotFoundError) as exc:
            raise RuntimeOperationError(
                f"{bot.name}: writable path {rel} cannot be handed to the gateway: {exc}"
            ) from None


def make_writable_paths(home: FleetHome, bot: BotConfig) -> None:
    """Create the bot's `writable` paths in `code/` (each is bind-mounted
    read-write over the read-only tree, so it must exist): made by
    descriptor, a link on the way refused in one line."""
    code = home.code_dir(bot.name)
    for rel in bot.writable_paths:
        try:
            make_agent_dirs(code, rel)
        except (UnsafeFile, NotADirectoryError) as exc:
            raise RuntimeOperationError(
                f"{bot.name}: writable path {rel} cannot be made: {exc}"
            ) from None
        except OSError as exc:
            raise RuntimeOperationError(
                f"{bot.name}: writable path {rel} cannot be made: {exc.strerror or exc}"
            ) from None


def prepare_proposals(home: FleetHome, bot: BotConfig) -> None:
    """The proposals tree the gateway writes at PROPOSALS_MOUNT: seeded from
    the approved tree if it is not there yet, and the note that says how to
    use it written to the agent's memory.

    When cftui runs as root the tree's top goes to the gateway's user before
    the seed, which then gives its copy the same owner before it records its
    stat cache (a later re-own would change every ctime and force a re-hash).
    """
    root = home.proposals_dir(bot.name)
    if not os.path.lexists(root):
        os.mkdir(root, 0o755)
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeOperationError(f"{root} is not a directory: move it aside and try again")
    if os.geteuid() == 0:
        uid, gid = gateway_user()
        if (st.st_uid, st.st_gid) != (uid, gid):
            with agent_dir(root) as fd:
                assert fd is not None
                os.fchown(fd, uid, gid)
    seed_proposals(home, bot)
    note = proposals_note(bot)
    if note is not None:
        try:
            write_agent_file(home.code_dir(bot.name), note, PROPOSALS_NOTE_TEXT, mode=0o644)
        except (UnsafeFile, OSError) as exc:
            raise RuntimeOperationError(
                f"{bot.name}: cannot write {note}: {getattr(exc, 'strerror', None) or exc}"
            ) from None


def seed_proposals(home: FleetHome, bot: BotConfig) -> bool:
    """The host's proposals tree seeded from the approved tree unless it is
    there already (both runtimes: a Lima VM's copy is pushed from it);
    whether it seeded. A failure is one line."""
    root = home.proposals_dir(bot.name)
    try:
        return ensure_seeded(home, bot.name)
    except (ProposalError, UnsafeFile) as exc:
        raise RuntimeOperationError(f"{bot.name}: {exc}") from None
    except OSError as exc:
        raise RuntimeOperationError(
            f"{bot.name}: cannot seed its proposals tree {root}: {exc.strerror or exc}"
        ) from None


def proposals_note(bot: BotConfig) -> str | None:
    """Where the note on proposing goes in `code/` (PROPOSALS_NOTE), or None
    when the bot has no writable memory to put it in (the operator chose so)."""
    parent = PROPOSALS_NOTE.rpartition("/")[0]
    return PROPOSALS_NOTE if parent in bot.writable_paths else None
