#!/bin/bash
# One bot's place in the VM, run as root by cftui before each start:
# a system user per service, the bot's directories with their owners and
# modes, its nftables containment, its nginx front, and the per-bot unit
# drop-ins (user, limits; what the gateway may write is gateway-paths.sh's,
# run once code/ is pushed). Reads the non-secret settings that
# cftui pushed to /etc/clawfactory/bots/BOT/bot.env. Idempotent.
#
# usage: bot-setup.sh BOT
set -eu -o pipefail
BOT=${1:?usage: bot-setup.sh BOT}
case $BOT in
[a-z]*) ;;
*) echo "bad bot name" >&2; exit 2 ;;
esac
CONF=/etc/clawfactory/bots/$BOT
# shellcheck disable=SC1091
. "$CONF/bot.env"

for u in "$CF_GW_USER" "$CF_LLM_USER" "$CF_EGRESS_USER" "$CF_FRONT_USER"; do
    id -u "$u" >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --user-group "$u"
done
GW_UID=$(id -u "$CF_GW_USER")

# Directories: the gateway owns only its code/, state/ and proposals/.
install -d -m 0700 -o "$CF_GW_USER" -g "$CF_GW_USER" "/srv/clawfactory/bots/$BOT" \
    "/srv/clawfactory/bots/$BOT/code" "/srv/clawfactory/bots/$BOT/state" \
    "/srv/clawfactory/bots/$BOT/proposals"
install -d -m 0711 -o root -g root "/srv/clawfactory/secrets/$BOT" "/srv/clawfactory/audit/$BOT"
install -d -m 0700 -o "$CF_LLM_USER" -g "$CF_LLM_USER" "/srv/clawfactory/audit/$BOT/llm"
install -d -m 0700 -o "$CF_EGRESS_USER" -g "$CF_EGRESS_USER" "/srv/clawfactory/audit/$BOT/egress" \
    "/var/lib/clawfactory/egress/$BOT"
install -d -m 0755 -o "$CF_EGRESS_USER" -g "$CF_EGRESS_USER" "/srv/clawfactory/ca/$BOT"
install -d -m 0700 "/srv/clawfactory/snapshots/$BOT"

# Containment: the gateway's user may open connections only to its own
# LLM proxy and egress proxy on loopback (and answer the front's); the rest
# is counted and dropped. The kill switch inserts a drop at the top.
cat >"/etc/clawfactory/nft/bot-$BOT.nft" <<NFT
table inet clawfactory {
    chain out-$BOT {
        type filter hook output priority 0; policy accept;
    }
}
flush chain inet clawfactory out-$BOT
table inet clawfactory {
    chain out-$BOT {
        meta skuid != $GW_UID return
        oifname "lo" ip daddr 127.0.0.1 tcp dport { $CF_LLM_PORT, $CF_EGRESS_PORT } accept
        ct state established,related accept
        counter drop comment "cf-contain"
    }
}
NFT
if test -e "/etc/clawfactory/killed/$BOT"; then
    echo "    insert rule inet clawfactory out-$BOT meta skuid $GW_UID counter drop comment \"cf-killed\"" \
        >>"/etc/clawfactory/nft/bot-$BOT.nft"
fi
nft -f "/etc/clawfactory/nft/bot-$BOT.nft"

cat >"$CONF/nginx.conf" <<NGINX
worker_processes 1;
pid /run/cf-front-$BOT/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path /run/cf-front-$BOT/body;
    proxy_temp_path /run/cf-front-$BOT/proxy;
    fastcgi_temp_path /run/cf-front-$BOT/fastcgi;
    uwsgi_temp_path /run/cf-front-$BOT/uwsgi;
    scgi_temp_path /run/cf-front-$BOT/scgi;
    map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
    server {
        listen 127.0.0.1:$CF_FRONT_PORT;
        location / {
            proxy_pass http://127.0.0.1:$CF_GATEWAY_PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$host;
            proxy_read_timeout 1h;
        }
    }
}
NGINX
chmod 0644 "$CONF/nginx.conf"

dropin() {  # UNIT CONTENT
    install -d -m 0755 "/etc/systemd/system/$1.d"
    printf '%s\n' "$2" >"/etc/systemd/system/$1.d/10-bot.conf"
}
dropin "cf-gateway@$BOT.service" "[Service]
User=$CF_GW_USER
Group=$CF_GW_USER
MemoryMax=$CF_MEMORY_MAX
MemorySwapMax=0
TasksMax=$CF_TASKS_MAX
CPUQuota=$CF_CPU_QUOTA"
dropin "cf-llm-proxy@$BOT.service" "[Service]
User=$CF_LLM_USER
Group=$CF_LLM_USER
ReadWritePaths=/srv/clawfactory/audit/$BOT/llm"
dropin "cf-egress@$BOT.service" "[Service]
User=$CF_EGRESS_USER
Group=$CF_EGRESS_USER
ReadWritePaths=/srv/clawfactory/audit/$BOT/egress /var/lib/clawfactory/egress/$BOT /srv/clawfactory/ca/$BOT"
dropin "cf-front@$BOT.service" "[Service]
User=$CF_FRONT_USER
Group=$CF_FRONT_USER"
systemctl daemon-reload
echo "clawfactory: bot $BOT set up"
