# System provisioning of the ClawFactory Lima VM. Lima runs it as root on
# every boot (template `provision: mode: system`), so every step checks
# before it acts. The stand-in VM of the tests runs this same file.
export DEBIAN_FRONTEND=noninteractive
log() { echo "clawfactory: $*"; }

PACKAGES="systemd dbus openssh-server nftables rsync sudo python3 python3-venv iproute2 nginx-light ca-certificates procps acl"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    log "installing$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi
# nginx runs one instance per bot (cf-front@), never the distribution's own.
systemctl disable --now nginx.service >/dev/null 2>&1 || true

if [ -e /etc/clawfactory-standin ]; then
    log "stand-in VM: skipping Node 22 and OpenClaw (no npm registry here)"
elif ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 22 ? 0 : 1)'; then
    log "installing Node 22 (NodeSource)"
    apt-get install -y -qq --no-install-recommends curl gnupg
    install -d -m 0755 /etc/apt/keyrings
    curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key |
        gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg
    echo "deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_22.x nodistro main" \
        >/etc/apt/sources.list.d/nodesource.list
    apt-get update -qq
    apt-get install -y -qq nodejs
fi
if [ ! -e /etc/clawfactory-standin ] && ! command -v openclaw >/dev/null 2>&1; then
    log "installing OpenClaw from npm"
    npm install -g --no-fund --no-audit openclaw@latest
fi

# cftui keeps one SSH connection per VM and multiplexes everything on it
# (3 audit followers per bot, events, logs): lift sshd's 10-session cap.
if [ ! -e /etc/ssh/sshd_config.d/clawfactory.conf ]; then
    install -d -m 0755 /etc/ssh/sshd_config.d
    echo "MaxSessions 200" >/etc/ssh/sshd_config.d/clawfactory.conf
    systemctl reload ssh.service >/dev/null 2>&1 || systemctl reload sshd.service >/dev/null 2>&1 || true
fi

# Restricted ptrace (Yama): a gateway's user may trace only its own children,
# never what cftui runs as that user outside its unit (rsync of state/,
# runuser), which would take it out of its sandbox. The kernel's default where
# Yama is built in, pinned in case the image lowers it; the leading '-' lets a
# kernel without Yama (or a read-only /proc/sys) ignore the line.
if [ ! -e /etc/sysctl.d/90-clawfactory.conf ]; then
    echo "-kernel.yama.ptrace_scope = 1" >/etc/sysctl.d/90-clawfactory.conf
fi
sysctl -q -p /etc/sysctl.d/90-clawfactory.conf >/dev/null 2>&1 || true

# The nftables base: our own table, loaded at boot from /etc/clawfactory/nft.
install -d -m 0755 /etc/clawfactory /etc/clawfactory/nft /etc/clawfactory/killed /var/lib/clawfactory
if ! grep -q clawfactory /etc/nftables.conf 2>/dev/null; then
    echo 'include "/etc/clawfactory/nft/*.nft"' >>/etc/nftables.conf
fi
systemctl enable nftables.service >/dev/null 2>&1 || true
touch /var/lib/clawfactory/system.done
log "system provisioning done"
