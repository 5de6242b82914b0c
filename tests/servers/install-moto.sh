#!/usr/bin/env bash
# Installs moto's S3 server into a virtual environment in the cache folder, with the Prometheus
# client whose parser the metrics tests read floe's metrics with.
# Idempotent. Prints the path of the moto_server executable on stdout.
set -euo pipefail
. "$(dirname "$0")/common.sh"

MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
PROMETHEUS_CLIENT_VERSION=0.21.1
VENV="$FLOE_TEST_CACHE/moto-$MOTO_VERSION"
BIN="$VENV/bin/moto_server"
if [ -x "$BIN" ] && "$VENV/bin/python" -c "import moto, flask, prometheus_client" 2>/dev/null; then
    echo "$BIN"
    exit 0
fi
mkdir -p "$FLOE_TEST_CACHE"
echo "installing moto[server] $MOTO_VERSION into $VENV" >&2
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" \
    "prometheus_client==$PROMETHEUS_CLIENT_VERSION" >&2
echo "$BIN"
