"""The uid the gateway runs as, for every runtime and the host-side preparation
that chowns its trees: one home, so Docker's specs, `host_prep` and the
images (whose Dockerfiles create the user) agree without importing each other.
"""

from __future__ import annotations

import os

# The gateway's uid and gid when cftui runs as root. Chosen so that no host
# account, container mapping or directory service is likely to hold it:
# above every regular and system account (0-60000, systemd's homed/dynamic
# users 60001-65519, nobody 65534, the 16-bit -1 65535), and below the
# subordinate id ranges that useradd hands out for rootless containers and
# Docker's userns-remap (100000 + 65536 per user, Debian's and Fedora's
# SUB_UID_MIN), SSSD's AD id mapping (from 200000) and systemd-nspawn's
# container ranges (from 524288). A process of some user's rootless
# container sharing the uid could otherwise signal or ptrace the gateway,
# and a file the gateway made would belong to a real person. It also stays
# below 2097151, so tar headers (snapshots) keep plain octal owner fields.
# The shipped gateway Dockerfiles create their user with this id.
GATEWAY_UID = 70_000
GATEWAY_GID = 70_000


def gateway_user() -> tuple[int, int]:
    """The uid/gid the gateway runs as: never root (GATEWAY_UID when cftui is)."""
    if os.getuid() == 0:
        return GATEWAY_UID, GATEWAY_GID
    return os.getuid(), os.getgid()
