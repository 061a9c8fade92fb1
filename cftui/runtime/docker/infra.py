"""A bot's networks, volumes and containers on the engine: made when
missing, made again when their spec changed (a label holds its hash),
started through the lock's gate, and removed with the bot."""

from __future__ import annotations

import contextlib

from cftui.errors import RuntimeOperationError
from cftui.fleet import BotConfig
from cftui.runtime.docker import firewall
from cftui.runtime.docker.engine import DockerEngine, explain
from cftui.runtime.docker.names import LABEL_BOT, LABEL_SPEC
from cftui.runtime.docker.spec import (
    ContainerSpec,
    allowlisted_hosts,
    ext_network,
    int_network,
    upstream_hosts,
    volume_specs,
)
from cftui.runtime.telemetry_env import collector_hosts


class StackInfra(DockerEngine):
    """What a stack is made of on the engine (part of `DockerRuntime`)."""

    def _ensure_infra(self, bot: BotConfig) -> None:
        import docker.errors

        labels = {LABEL_BOT: bot.name}
        for name, internal in ((int_network(bot.name), True), (ext_network(bot.name), False)):
            try:
                net = self.api.inspect_network(name)
            except docker.errors.NotFound:
                try:
                    self.api.create_network(
                        name,
                        driver="bridge",
                        internal=internal,
                        labels=labels,
                        check_duplicate=True,
                        options=firewall.internal_network_options(self.api) if internal else None,
                    )
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:
                        raise
                continue
            if bool(net.get("Internal")) != internal:
                raise RuntimeOperationError(
                    f"network {name} exists but is {'not ' if internal else ''}internal: "
                    f"remove it (`docker network rm {name}`) and start again"
                )
        firewall.isolate_host(self.api, bot.name, int_network(bot.name), self._host_shell())
        for vol in volume_specs(bot.name):
            try:
                self.api.inspect_volume(vol.name)
            except docker.errors.NotFound:
                self.api.create_volume(
                    vol.name, driver="local", driver_opts=vol.driver_opts, labels=labels
                )

    def _upstream_networks(self, bot: BotConfig) -> list[str]:
        """Networks of local containers named as upstreams, or as the span
        collector (`[telemetry]`), which the LLM proxy joins (not internal ones)."""
        return self._networks_of(upstream_hosts(bot) + collector_hosts(self.home.telemetry()))

    def _allowlisted_networks(self, bot: BotConfig) -> list[str]:
        """Networks of local containers named in the egress allowlist."""
        return self._networks_of(allowlisted_hosts(bot))

    def _networks_of(self, hosts: list[str]) -> list[str]:
        """The non-internal networks the named containers are on."""
        found: set[str] = set()
        for host in hosts:
            attrs = self._inspect(host)
            if attrs is None:
                continue
            for net in (attrs.get("NetworkSettings") or {}).get("Networks") or {}:
                if net in ("bridge", "host", "none"):
                    continue
                with contextlib.suppress(Exception):
                    if not self.api.inspect_network(net).get("Internal"):
                        found.add(net)
        return sorted(found)

    def _ensure_container(self, bot: BotConfig, spec: ContainerSpec) -> str:
        """Create the container unless one with the same spec exists; its id.
        Through the gate: a container made, or given its restart policy
        back, while the bot is locked could be started by the engine."""
        with self.gate(bot, f"creating {spec.name}"):
            return self._ensure_container_gated(spec)

    def _ensure_container_gated(self, spec: ContainerSpec) -> str:
        import docker.errors

        image_id = self.api.inspect_image(spec.image)["Id"]
        want = spec.spec_hash(image_id)
        current = self._inspect(spec.name)
        if current is not None:
            same = (current.get("Config") or {}).get("Labels", {}).get(LABEL_SPEC) == want
            # The kill switch disconnects the gateway: such a container is
            # made again rather than started with no network.
            attached = set((current.get("NetworkSettings") or {}).get("Networks") or {})
            if same and attached == set(spec.networks):
                # The kill switch also set its restart policy to `no`: restore it.
                policy = spec.host_config["restart_policy"]
                if (current.get("HostConfig") or {}).get("RestartPolicy", {}).get("Name") != policy[
                    "Name"
                ]:
                    self.api.update_container(spec.name, restart_policy=policy)
                return current["Id"]
            self.api.remove_container(spec.name, force=True)
        host_config = self.api.create_host_config(**spec.host_config)
        networking = self.api.create_networking_config(
            {spec.networks[0]: self.api.create_endpoint_config(aliases=spec.aliases)}
        )
        ports = list(spec.host_config.get("port_bindings", {}))
        try:
            created = self.api.create_container(
                image=spec.image,
                command=spec.command,
                name=spec.name,
                user=spec.user or "",
                environment=spec.environment,
                labels={**spec.labels, LABEL_SPEC: want},
                host_config=host_config,
                networking_config=networking,
                ports=ports or None,
                detach=True,
            )
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # made by a concurrent start
                return self.api.inspect_container(spec.name)["Id"]
            raise
        cid = created["Id"]
        for net in spec.networks[1:]:
            self.api.connect_container_to_network(cid, net, aliases=spec.aliases)
        return cid

    def _start(self, bot: BotConfig, name: str) -> None:
        import docker.errors

        try:
            with self.gate(bot, f"starting {name}"):
                self.api.start(name)
        except docker.errors.APIError as exc:
            raise RuntimeOperationError(f"cannot start {name}: {explain(exc)}") from None

    def _remove(self, bot: str) -> None:
        import docker.errors

        for summary in self.api.containers(all=True, filters={"label": f"{LABEL_BOT}={bot}"}):
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_container(summary["Id"], force=True)
        for net in (int_network(bot), ext_network(bot)):
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_network(net)
        firewall.release_host(bot, self._host_shell())
        for vol in volume_specs(bot):
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_volume(vol.name, force=True)
