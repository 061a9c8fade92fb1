"""How a bot's Docker objects are named and labelled: the one spelling that
the specs write and every reader (the status listing, the events stream, the
kill) looks for. A leaf, so a reader loads no spec."""

from __future__ import annotations

LABEL_BOT = "io.clawfactory.bot"
LABEL_SERVICE = "io.clawfactory.service"
LABEL_SPEC = "io.clawfactory.spec"


def container_name(bot: str, service: str) -> str:
    return f"cf-{bot}-{service}"
