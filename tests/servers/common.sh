# Shared by the scripts that install and run the S3 servers of the test suite.
# Everything binds to 127.0.0.1 on free ports; state lives under $FLOE_TEST_SERVERS.

FLOE_TEST_CACHE="${FLOE_TEST_CACHE:-$HOME/.cache/floe-test}"
FLOE_TEST_SERVERS="${FLOE_TEST_SERVERS:-${TMPDIR:-/tmp}/floe-test-servers}"
SERVERS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Prints N free TCP ports on 127.0.0.1, one per line.
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
PY
}

# Waits until a TCP port accepts connections, or fails after $2 seconds.
wait_port() {
    local port=$1 limit=${2:-30} i
    for ((i = 0; i < limit * 10; i++)); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2)" "$port" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$port after ${limit}s" >&2
    return 1
}

# Stops the process whose pid is in file $1, if it runs.
stop_pidfile() {
    local f=$1 pid i
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if kill "$pid" 2>/dev/null; then
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}
