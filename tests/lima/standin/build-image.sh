#!/bin/sh
# Build the stand-in "VM" image for the Lima runtime's tests: a Debian
# bookworm root file system with systemd, sshd, nftables, rsync and python3,
# debootstrapped from the Debian mirror (no container registry needed) and
# imported into Docker. The packages are the ones lima/provision/system.sh
# installs on a real Lima VM, so that script finds nothing left to install.
#
# usage: build-image.sh IMAGE:TAG
set -eu
IMAGE=${1:?usage: build-image.sh IMAGE:TAG}
MIRROR=${CF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=systemd,systemd-sysv,dbus,openssh-server,nftables,rsync,sudo,python3,python3-venv,iproute2,nginx-light,ca-certificates,procps,acl
WORK=$(mktemp -d /var/tmp/cf-standin.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/rootfs
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOT" "$MIRROR" >"$WORK/log" 2>&1 || {
    tail -n 20 "$WORK/log" >&2
    exit 1
}
# What a cloud image has and a bare root file system lacks.
: >"$ROOT/etc/machine-id"
echo lima-standin >"$ROOT/etc/hostname"
touch "$ROOT/etc/clawfactory-standin"  # system.sh skips npm here: no registry
for unit in getty@tty1.service console-getty.service systemd-logind.service \
    systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    fstrim.timer nginx.service; do
    ln -sf /dev/null "$ROOT/etc/systemd/system/$unit"
done
chroot "$ROOT" systemctl enable ssh.service >/dev/null 2>&1 || true
rm -f "$ROOT"/etc/ssh/ssh_host_*  # fresh host keys per container (sshd-keygen below)
mkdir -p "$ROOT/etc/systemd/system/ssh.service.d"
cat >"$ROOT/etc/systemd/system/ssh.service.d/keys.conf" <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT
rm -rf "$ROOT/var/cache/apt/archives/"*.deb "$ROOT/var/lib/apt/lists/"*
tar -C "$ROOT" -c . | docker import -c 'CMD ["/sbin/init"]' \
    -c 'LABEL io.clawfactory.standin=1' - "$IMAGE" >/dev/null
echo "$IMAGE"
