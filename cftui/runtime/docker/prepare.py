"""Before a stack starts: the bot's files on the host checked and readied
for its containers (the gateway's env, the egress control file, OpenClaw's
proxy wiring, the writable paths made, they and `state/` handed to the
gateway's user, and the proposals tree seeded). The work
on files the agent can write is `host_prep`'s; this is the order of it."""

from __future__ import annotations

from cftui.errors import FleetError, RuntimeOperationError
from cftui.fleet import BotConfig
from cftui.runtime import host_prep
from cftui.runtime.docker.engine import DockerEngine
from cftui.runtime.docker.spec import bind_paths


class HostPreparation(DockerEngine):
    """The host side of a start (part of `DockerRuntime`)."""

    def _gateway_env(self, bot: BotConfig) -> dict[str, str]:
        return host_prep.gateway_env(self.home, bot.name)

    def _recipient(self, bot: BotConfig) -> str:
        from cftui.identity import recipient_of

        return recipient_of(self.home, bot.name)

    def _wire_openclaw(self, bot: BotConfig, env: dict[str, str]) -> None:
        """CONTRACTS §4: OpenClaw ignores env on many paths; its config holds it."""
        host_prep.wire_openclaw(self.home, bot, env)

    def _hand_to_gateway(self, bot: BotConfig) -> None:
        """Let the gateway's user own `state/` and its writable paths (host_prep)."""
        host_prep.hand_to_gateway(self.home, bot)

    def _prepare_host(self, bot: BotConfig) -> dict[str, str]:
        for path in bind_paths(self.home, bot.name):
            if not path.exists():
                raise FleetError(f"{path} is missing: re-create {bot.name} with `cftui init`")
        host_prep.check_gitdir(self.home, bot.name)
        env = self._gateway_env(bot)
        # The egress proxy takes the control file it finds at start as its
        # baseline (capture on/off, allowlist): make it match fleet.toml.
        from cftui import egress_control

        try:
            egress_control.sync_control(self.home, bot.name)
        except OSError as exc:
            raise RuntimeOperationError(
                f"{bot.name}: cannot write the egress control file: {exc.strerror or exc}"
            ) from None
        if bot.gateway == "openclaw":
            self._wire_openclaw(bot, env)
        # Made first (a link on the way refused), then handed over: only they
        # and state/ change owner, never the rest of code/.
        host_prep.make_writable_paths(self.home, bot)
        self._hand_to_gateway(bot)
        host_prep.prepare_proposals(self.home, bot)
        return env
