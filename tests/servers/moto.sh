#!/usr/bin/env bash
# moto's S3 server on 127.0.0.1, for the storage-class tests (it emulates archive classes).
#
#   moto.sh start   install if needed and start; writes $FLOE_TEST_SERVERS/moto/env
#   moto.sh stop
set -euo pipefail
. "$(dirname "$0")/common.sh"

DIR="$FLOE_TEST_SERVERS/moto"

case "${1:-}" in
start)
    "$0" stop >/dev/null 2>&1 || true
    bin=$("$SERVERS_DIR/install-moto.sh")
    mkdir -p "$DIR"
    port=$(free_ports 1)
    "$bin" -H 127.0.0.1 -p "$port" >>"$DIR/log" 2>&1 &
    echo $! >"$DIR/pid"
    wait_port "$port" 60
    cat >"$DIR/env" <<ENV
export FLOE_TEST_MOTO_ENDPOINT=http://127.0.0.1:$port
export FLOE_TEST_PYTHON=$(dirname "$bin")/python
ENV
    echo "moto: S3 API on http://127.0.0.1:$port" >&2
    ;;
stop)
    stop_pidfile "$DIR/pid"
    rm -rf "$DIR"
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
