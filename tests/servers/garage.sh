#!/usr/bin/env bash
# A 3-node Garage cluster on 127.0.0.1 with replication factor 3, for the S3 tests.
#
#   garage.sh start          install if needed, start the nodes, make the layout, the keys (one
#                            read-write, one read-only) and the bucket; writes
#                            $FLOE_TEST_SERVERS/garage/env
#   garage.sh stop           stop every node and remove the cluster's data
#   garage.sh stop-node N    stop node N (1..3), keeping its data
#   garage.sh start-node N   start node N again
set -euo pipefail
. "$(dirname "$0")/common.sh"

DIR="$FLOE_TEST_SERVERS/garage"
NODES=3

garage_bin() { cat "$DIR/bin"; }
g() { "$(garage_bin)" -c "$DIR/node1/garage.toml" "$@"; }

start_node() {
    local n=$1
    "$(garage_bin)" -c "$DIR/node$n/garage.toml" server >>"$DIR/node$n/log" 2>&1 &
    echo $! >"$DIR/node$n/pid"
}

case "${1:-}" in
start)
    "$0" stop >/dev/null 2>&1 || true
    bin=$("$SERVERS_DIR/install-garage.sh")
    mkdir -p "$DIR"
    echo "$bin" >"$DIR/bin"
    secret=$(python3 -c "import secrets; print(secrets.token_hex(32))")
    mapfile -t ports < <(free_ports $((NODES * 3)))
    for n in $(seq 1 $NODES); do
        rpc=${ports[$(((n - 1) * 3))]}
        s3=${ports[$(((n - 1) * 3 + 1))]}
        admin=${ports[$(((n - 1) * 3 + 2))]}
        mkdir -p "$DIR/node$n/meta" "$DIR/node$n/data"
        cat >"$DIR/node$n/garage.toml" <<TOML
metadata_dir = "$DIR/node$n/meta"
data_dir = "$DIR/node$n/data"
db_engine = "lmdb"
lmdb_map_size = "1G"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
TOML
        echo "$rpc" >"$DIR/node$n/rpc_port"
        echo "$s3" >"$DIR/node$n/s3_port"
        start_node "$n"
    done
    for n in $(seq 1 $NODES); do
        wait_port "$(cat "$DIR/node$n/rpc_port")" 30
    done
    ids=()
    for n in $(seq 1 $NODES); do
        ids+=("$("$bin" -c "$DIR/node$n/garage.toml" node id -q 2>/dev/null)")
    done
    for n in 2 3; do
        g node connect "${ids[$((n - 1))]}" >/dev/null
    done
    for id in "${ids[@]}"; do
        g layout assign -z dc1 -c 1G "${id%@*}" >/dev/null
    done
    g layout apply --version 1 >/dev/null
    # The layout spreads to every node; the key and the bucket need a healthy cluster.
    for i in $(seq 1 100); do
        if g key create floe-test >"$DIR/key" 2>/dev/null; then break; fi
        sleep 0.3
    done
    key_id=$(sed -n 's/^Key ID: *//p' "$DIR/key" | head -1)
    key_secret=$(sed -n 's/^Secret key: *//p' "$DIR/key" | head -1)
    if [ -z "$key_id" ] || [ -z "$key_secret" ]; then
        echo "could not create a Garage key:" >&2
        cat "$DIR/key" >&2
        exit 1
    fi
    g bucket create floe-test >/dev/null
    g bucket allow --read --write --owner floe-test --key floe-test >/dev/null
    # A second key that may only read, for the tests of read-only access.
    g key create floe-test-read-only >"$DIR/key-ro"
    ro_id=$(sed -n 's/^Key ID: *//p' "$DIR/key-ro" | head -1)
    ro_secret=$(sed -n 's/^Secret key: *//p' "$DIR/key-ro" | head -1)
    g bucket allow --read floe-test --key floe-test-read-only >/dev/null
    s3=$(cat "$DIR/node1/s3_port")
    wait_port "$s3" 30
    cat >"$DIR/env" <<ENV
export FLOE_TEST_GARAGE_ENDPOINT=http://127.0.0.1:$s3
export FLOE_TEST_GARAGE_BUCKET=floe-test
export FLOE_TEST_GARAGE_KEY_ID=$key_id
export FLOE_TEST_GARAGE_SECRET=$key_secret
export FLOE_TEST_GARAGE_RO_KEY_ID=$ro_id
export FLOE_TEST_GARAGE_RO_SECRET=$ro_secret
export FLOE_TEST_GARAGE_REGION=garage
export FLOE_TEST_GARAGE_CTL=$SERVERS_DIR/garage.sh
ENV
    echo "garage: 3 nodes, S3 API on http://127.0.0.1:$s3 (node 1), replication factor 3" >&2
    ;;
stop)
    for n in $(seq 1 $NODES); do
        stop_pidfile "$DIR/node$n/pid"
    done
    rm -rf "$DIR"
    ;;
stop-node)
    stop_pidfile "$DIR/node${2:?node number}/pid"
    ;;
start-node)
    start_node "${2:?node number}"
    wait_port "$(cat "$DIR/node$2/rpc_port")" 30
    ;;
*)
    echo "usage: $0 start|stop|stop-node N|start-node N" >&2
    exit 2
    ;;
esac
