#!/usr/bin/env bash
# A PostgreSQL server on 127.0.0.1, for the test of database dumps backed up through
# `backup --stdin-from-command` (Debian's package; installed with apt-get when missing).
#
#   postgres.sh start   install if needed and start; writes $FLOE_TEST_SERVERS/postgres/env
#   postgres.sh stop
#
# The server trusts local connections and runs as the user `postgres` when started by root
# (PostgreSQL refuses to run as root), else as the user who starts it.
set -euo pipefail
. "$(dirname "$0")/common.sh"

DIR="$FLOE_TEST_SERVERS/postgres"

pg_bin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "${1:-}" in
start)
    "$0" stop >/dev/null 2>&1 || true
    if ! bin=$(pg_bin); then
        echo "installing PostgreSQL (Debian's package)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 ||
            { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }
        bin=$(pg_bin)
    fi
    user=$([ "$(id -u)" = 0 ] && echo postgres || id -un)
    mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$DIR"
    as_owner "$bin/initdb" -D "$DIR/data" -U "$user" --auth=trust -E UTF8 >"$DIR/initdb.log" 2>&1
    port=$(free_ports 1)
    as_owner "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $DIR -c fsync=off" start >&2
    cat >"$DIR/env" <<ENV
export FLOE_TEST_PG_HOST=127.0.0.1
export FLOE_TEST_PG_PORT=$port
export FLOE_TEST_PG_USER=$user
export FLOE_TEST_PG_BIN=$bin
ENV
    echo "postgres: on 127.0.0.1:$port as $user" >&2
    ;;
stop)
    if [ -d "$DIR/data" ] && bin=$(pg_bin); then
        as_owner "$bin/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
