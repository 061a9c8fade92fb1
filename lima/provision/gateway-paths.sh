#!/bin/bash
# What a bot's gateway may write, run as root by cftui after it pushed code/
# and before the gateway starts: the unit sees /code read-only (the approved
# tree), and this drop-in lets it write only /state, /proposals and the
# bot's `writable` paths of /code (fleet.toml; one a line in
# /etc/clawfactory/bots/BOT/writable, written by cftui).
#
# cftui checked the paths when it read fleet.toml; they are checked again
# here, where systemd will resolve them as root: each must be relative, made
# of plain names (no `.`, `..` or `.git`, nothing systemd or a shell would
# read as syntax), not inside another one, and every directory on the way
# from code/ must be a real directory, never a link. A missing one is made
# as the gateway's user. Any refusal is one line and leaves the previous
# drop-in in place (the start then fails rather than run wider).
#
# usage: gateway-paths.sh BOT
set -eu -o pipefail
BOT=${1:?usage: gateway-paths.sh BOT}
case $BOT in
[a-z]*) ;;
*) echo "bad bot name" >&2; exit 2 ;;
esac
CONF=/etc/clawfactory/bots/$BOT
# shellcheck disable=SC1091
. "$CONF/bot.env"
CODE=/srv/clawfactory/bots/$BOT/code
die() { echo "$BOT: writable path $*" >&2; exit 1; }

paths=()
while IFS= read -r rel || [ -n "$rel" ]; do
    [ -n "$rel" ] || continue
    case $rel in
    /* | */ | *//*) die "'$rel' must be a relative path inside code/" ;;
    esac
    [[ $rel =~ ^[A-Za-z0-9._@+/-]+$ ]] || die "'$rel' may hold only letters, digits and . _ @ + - /"
    IFS=/ read -ra parts <<<"$rel"
    for p in "${parts[@]}"; do
        case $p in
        . | .. | .git) die "'$rel' must stay inside code/ and out of its git" ;;
        esac
    done
    paths+=("$rel")
done <"$CONF/writable"

for a in "${paths[@]}"; do
    for b in "${paths[@]}"; do
        case $b in
        "$a"/*) die "'$b' is inside '$a': list one of them" ;;
        esac
    done
done

test -d "$CODE" && ! test -L "$CODE" || die "code/ of $BOT is missing"
rw="/state /proposals"
for rel in "${paths[@]}"; do
    cur=$CODE
    IFS=/ read -ra parts <<<"$rel"
    for p in "${parts[@]}"; do
        cur=$cur/$p
        if test -L "$cur"; then
            die "'$rel': ${cur#"$CODE"/} is a link: refused, never followed"
        elif ! test -e "$cur"; then
            runuser -u "$CF_GW_USER" -- mkdir -m 0700 -- "$cur"
        elif ! test -d "$cur"; then
            die "'$rel': ${cur#"$CODE"/} is not a directory"
        fi
    done
    rw="$rw /code/$rel"
done

install -d -m 0755 "/etc/systemd/system/cf-gateway@$BOT.service.d"
printf '[Service]\nReadWritePaths=%s\n' "$rw" >"/etc/systemd/system/cf-gateway@$BOT.service.d/20-paths.conf.tmp"
mv -f "/etc/systemd/system/cf-gateway@$BOT.service.d/20-paths.conf.tmp" \
    "/etc/systemd/system/cf-gateway@$BOT.service.d/20-paths.conf"
systemctl daemon-reload
echo "clawfactory: $BOT may write $rw"
