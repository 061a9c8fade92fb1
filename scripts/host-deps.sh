#!/usr/bin/env bash
# Debian packages the tests and the air-gapped image build use: the stock
# `age` CLI (interop tests), debootstrap (the local base image), tmux (the
# end-to-end test), rsync and ssh (the Lima runtime, remote hosts), and
# sshd (the test hosts of tests/hosts, reached over SSH). Installs what is missing
# when run as root; otherwise says what to install.
set -euo pipefail
need=()
for pair in age:age debootstrap:debootstrap tmux:tmux rsync:rsync ssh:openssh-client; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing host packages: ${need[*]} (install them with: sudo apt-get install ${need[*]})" >&2
    exit 1
fi
echo "installing host packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
