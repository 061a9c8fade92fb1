"""One exception type per domain, each carrying a message a user can act on.

The CLI turns a `CftuiError` into one line on stderr and its `exit_code`
(CONTRACTS §1: 2 for bad arguments or input, 1 for a failed operation).
"""

from __future__ import annotations


class CftuiError(Exception):
    """An error the operator can act on; never shown with a traceback."""

    exit_code = 1


class UsageError(CftuiError):
    """Bad arguments or input."""

    exit_code = 2


class FleetError(CftuiError):
    """The fleet home or fleet.toml is missing, unreadable or inconsistent."""


class BadBotName(UsageError):
    """A bot name that does not match ^[a-z][a-z0-9-]{0,30}$."""


class UnknownBot(UsageError):
    """A bot that fleet.toml does not list."""


class BotLocked(CftuiError):
    """The kill switch locked this bot; only `cftui unlock` lifts it."""


class RuntimeUnavailable(CftuiError):
    """The runtime (Docker engine, limactl, the VM) does not answer."""


class RuntimeOperationError(CftuiError):
    """A runtime operation (build, start, stop) failed."""


class SnapshotError(CftuiError):
    """A snapshot could not be created, read or restored."""


class CaptureError(CftuiError):
    """The MITM capture log or its keys could not be read."""


class ConfigError(CftuiError):
    """The gateway configuration is invalid or cannot be changed."""


class ProposalError(CftuiError):
    """A proposal of the gateway could not be read, promoted or rejected."""


class DiskError(CftuiError):
    """A bot's disk image could not be made, mounted, grown or released."""
