#!/bin/bash
# What every bot of the VM shares, pushed by cftui over SSH after boot and
# run as root: the proxies' virtualenvs (clawfactory-proxies from the wheel
# cftui built; mitmproxy in a venv of its own), the systemd unit templates
# and the gateway launcher. Idempotent; cftui runs it again only when this
# directory's content hash changes.
#
# usage: vm-setup.sh DIR   (DIR holds lima/ as pushed, with wheels/ inside)
set -eu -o pipefail
DIR=${1:?usage: vm-setup.sh DIR}
log() { echo "clawfactory: $*"; }
test -e /var/lib/clawfactory/system.done || {
    echo "system provisioning has not run (lima/provision/system.sh)" >&2
    exit 1
}
WHEELS=$DIR/wheels
pip_install() {  # VENV SPEC: offline from the wheelhouse if it has all, else the index too
    local venv=$1 spec=$2
    test -x "$venv/bin/python" || python3 -m venv "$venv"
    if ! "$venv/bin/pip" install -q --disable-pip-version-check --no-index --find-links "$WHEELS" "$spec" 2>/tmp/cf-pip.err; then
        log "wheelhouse incomplete for $spec, using the package index"
        "$venv/bin/pip" install -q --disable-pip-version-check --find-links "$WHEELS" "$spec" || {
            cat /tmp/cf-pip.err >&2
            exit 1
        }
    fi
}
# Reinstall the proxies package every time: the wheel's version string does
# not change while its code does.
for venv in /opt/clawfactory/venv /opt/clawfactory/venv-egress; do
    test -x "$venv/bin/pip" && "$venv/bin/pip" uninstall -q -y clawfactory-proxies >/dev/null 2>&1 || true
done
log "installing clawfactory-proxies[llm,fake]"
pip_install /opt/clawfactory/venv "clawfactory-proxies[llm,fake]"
log "installing clawfactory-proxies[egress] (mitmproxy)"
pip_install /opt/clawfactory/venv-egress "clawfactory-proxies[egress]"

install -d -m 0755 /usr/local/lib/clawfactory /etc/clawfactory/bots /srv/clawfactory /code /state
install -d -m 0711 /srv/clawfactory/secrets /srv/clawfactory/audit /srv/clawfactory/bots
install -d -m 0700 /srv/clawfactory/snapshots
install -d -m 0711 /var/lib/clawfactory/egress
install -d -m 0755 /srv/clawfactory/ca
install -m 0755 "$DIR/bin/gateway-run" /usr/local/lib/clawfactory/gateway-run
install -m 0755 "$DIR/provision/bot-setup.sh" /usr/local/lib/clawfactory/bot-setup.sh
for unit in "$DIR"/systemd/*.service; do
    install -m 0644 "$unit" /etc/systemd/system/
done
systemctl daemon-reload
log "vm setup done"
