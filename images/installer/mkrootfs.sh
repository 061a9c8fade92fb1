#!/usr/bin/env bash
# Builds the root filesystem of clawfactory/installer: Debian bookworm
# (minbase) with Debian's nodejs and npm, for the one-shot container that
# installs a bot's declared npm dependencies through its egress proxy.
# Built only when some bot declares dependencies. Needs root and debootstrap;
# only Debian's own mirror is contacted. `cftui` imports the result with
# `docker import` (as it does images/base/).
#
#   mkrootfs.sh ROOTFS [MIRROR]
set -euo pipefail
rootfs=${1:?usage: mkrootfs.sh ROOTFS [MIRROR]}
mirror=${2:-http://deb.debian.org/debian}
here=$(cd "$(dirname "$0")" && pwd)
packages=$(grep -v '^#' "$here/packages.txt" | xargs | tr ' ' ',')

if [ "$(id -u)" -ne 0 ]; then
    echo "mkrootfs.sh: debootstrap needs root (run as root or via sudo)" >&2
    exit 1
fi
command -v debootstrap >/dev/null || {
    echo "mkrootfs.sh: debootstrap is not installed (apt-get install debootstrap)" >&2
    exit 1
}

# debootstrap's own resolver cannot follow npm's several hundred node-*
# dependencies (some through virtual packages): it bootstraps the base, and
# apt, in the new root, installs the list against the same mirror.
echo "debootstrap bookworm minbase, then apt-get install: $packages"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror"
echo "deb $mirror bookworm main" >"$rootfs/etc/apt/sources.list"
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
mount -t proc proc "$rootfs/proc"
trap 'umount -l "$rootfs/proc" 2>/dev/null || true' EXIT
chroot "$rootfs" apt-get -q update
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get -q install -y --no-install-recommends \
    ${packages//,/ }
chroot "$rootfs" apt-get clean
# A trigger's child may still hold /proc for a moment: detach it lazily.
umount "$rootfs/proc" 2>/dev/null || umount -l "$rootfs/proc"
trap - EXIT

rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old "$rootfs"/tmp/* \
    "$rootfs"/debootstrap
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/hostname"
echo "rootfs ready: $(du -sh "$rootfs" | cut -f1)"
