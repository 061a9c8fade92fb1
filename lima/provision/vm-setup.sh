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
# The dependencies change rarely, the proxies' own code often: a stamp of
# the other wheels decides whether the venvs are rebuilt or only the
# clawfactory-proxies wheel is swapped in (its version string stays the same).
DEPS=$(ls "$WHEELS" | grep -v '^clawfactory_proxies' | sha256sum | cut -c1-16)
PROXIES_WHEEL=$(ls "$WHEELS"/clawfactory_proxies-*.whl | head -n 1)
for pair in "venv:llm,fake" "venv-egress:egress"; do
    venv=/opt/clawfactory/${pair%%:*}
    extras=${pair#*:}
    if [ "$(cat "$venv/.cf-deps" 2>/dev/null)" = "$DEPS" ]; then
        log "refreshing clawfactory-proxies in $venv"
        "$venv/bin/pip" install -q --disable-pip-version-check --no-index --no-deps \
            --force-reinstall "$PROXIES_WHEEL"
    else
        log "installing clawfactory-proxies[$extras] in $venv"
        test -x "$venv/bin/pip" && "$venv/bin/pip" uninstall -q -y clawfactory-proxies >/dev/null 2>&1 || true
        pip_install "$venv" "clawfactory-proxies[$extras]"
        echo "$DEPS" >"$venv/.cf-deps"
    fi
done

install -d -m 0755 /usr/local/lib/clawfactory /etc/clawfactory/bots /srv/clawfactory /code /state /proposals
install -d -m 0711 /srv/clawfactory/secrets /srv/clawfactory/audit /srv/clawfactory/bots
install -d -m 0700 /srv/clawfactory/snapshots
install -d -m 0711 /var/lib/clawfactory/egress
install -d -m 0755 /srv/clawfactory/ca
install -m 0755 "$DIR/bin/gateway-run" /usr/local/lib/clawfactory/gateway-run
install -m 0755 "$DIR/provision/bot-setup.sh" /usr/local/lib/clawfactory/bot-setup.sh
install -m 0755 "$DIR/provision/gateway-paths.sh" /usr/local/lib/clawfactory/gateway-paths.sh
for unit in "$DIR"/systemd/*.service; do
    install -m 0644 "$unit" /etc/systemd/system/
done
systemctl daemon-reload
log "vm setup done"
