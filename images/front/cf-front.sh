#!/bin/sh
# Writes the nginx configuration from the environment into /tmp (the image's
# root may be read-only) and runs nginx in the foreground as this user.
set -eu
upstream=${CF_FRONT_UPSTREAM:-gateway:18789}
listen=${CF_FRONT_LISTEN:-8080}
resolver=${CF_FRONT_RESOLVER:-127.0.0.11}
case "$upstream$listen$resolver" in
    *[!A-Za-z0-9.:_-]*) echo "cf-front: bad CF_FRONT_* value" >&2; exit 2 ;;
esac
mkdir -p /tmp/cf-front
sed -e "s/@UPSTREAM@/$upstream/g" -e "s/@LISTEN@/$listen/g" -e "s/@RESOLVER@/$resolver/g" \
    /etc/cf-front/nginx.conf.in >/tmp/cf-front/nginx.conf
exec nginx -e stderr -c /tmp/cf-front/nginx.conf -g 'daemon off;'
