#!/usr/bin/env bash
# Builds clawfactory/base:bookworm (when no registry can supply the shipped
# bases) and every service image, showing build progress. Images already
# built from the same sources are skipped, so a rerun is quick: use it to warm
# a CI cache or a fresh machine before `cftui demo`.
#
#   scripts/build-images.sh [--rebuild] [SERVICE ...]   (default: all)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-}
if [ -z "$py" ]; then
    if [ -x "$here/.venv/bin/python" ]; then py="$here/.venv/bin/python"; else py=python3; fi
fi
exec "$py" -m cftui.cli.build_images "$@"
