#!/usr/bin/env bash
# Throughput through S3: floe to a local repository and to the 3-node Garage cluster of the
# tests, and restic to the same cluster, on the same generated dataset.
#
# Usage: benches/s3.sh [--scale S | --tree DIR] [--runs N] [--connections N] [--latency MS]
#
#   --scale S        dataset size factor (1.0 is about 1 GiB; default 0.5)
#   --tree DIR       back up this existing folder instead (read only)
#   --runs N         repetitions (default 3)
#   --connections N  floe's --connections (default: floe's default)
#   --latency MS     put tests/servers/flaky_proxy.py in front of the cluster, holding every
#                    request MS ms before forwarding it and its answer MS ms more (a round trip
#                    of 2*MS ms, as to a distant region); it injects no fault. Both tools go
#                    through it; floe's local runs are left out.
#
# Starts the Garage cluster with tests/servers/garage.sh (installing it on first use) and stops
# it at the end. Every run uses fresh repositories; each step is timed with GNU time (wall
# seconds, peak RSS). Restores are compared with the dataset by diff -r. Output: a table of
# medians on stdout, raw figures in BENCH_DIR/s3-results.tsv.
#
# Environment: BENCH_DIR (default <project>/bench-work), FLOE_BIN (default
# target/release/floe), RESTIC_BIN (default restic from PATH; skipped when absent).
set -euo pipefail

SCALE=0.5
RUNS=3
CONNECTIONS=
LATENCY=
TREE=
while [[ $# -gt 0 ]]; do
    case "$1" in
        --scale) SCALE=$2; shift 2 ;;
        --tree) TREE=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        --latency) LATENCY=$2; shift 2 ;;
        *) sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
    esac
done

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=$(dirname "$SCRIPT_DIR")
BENCH_DIR=${BENCH_DIR:-$PROJECT_DIR/bench-work}
FLOE=${FLOE_BIN:-$PROJECT_DIR/target/release/floe}
RESTIC=${RESTIC_BIN:-$(command -v restic || true)}
GNU_TIME=/usr/bin/time
[ -x "$GNU_TIME" ] || { echo "GNU time is needed at /usr/bin/time (apt-get install time)" >&2; exit 1; }
[ -x "$FLOE" ] || { echo "no floe binary at $FLOE (cargo build --release)" >&2; exit 1; }

[[ -z "$LATENCY" || "$LATENCY" =~ ^[0-9]+$ ]] || { echo "--latency takes whole milliseconds" >&2; exit 2; }
if [ -n "$TREE" ]; then
    [ -d "$TREE" ] || { echo "--tree $TREE is not a folder" >&2; exit 2; }
    DATASET=$(cd "$TREE" && pwd)
else
    DATASET="$BENCH_DIR/dataset-s$SCALE-seed42"
    if [ ! -d "$DATASET" ]; then
        python3 "$SCRIPT_DIR/make_dataset.py" "$DATASET" --scale "$SCALE" --seed 42 >&2
    fi
fi
BYTES=$(du -sb "$DATASET" | cut -f1)

# A cluster of its own, apart from one the tests may be using.
export FLOE_TEST_SERVERS="$BENCH_DIR/servers"
"$PROJECT_DIR/tests/servers/garage.sh" start
PROXY_PID=
stop_all() {
    [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null
    "$PROJECT_DIR/tests/servers/garage.sh" stop >/dev/null 2>&1 || true
}
trap stop_all EXIT
. "$FLOE_TEST_SERVERS/garage/env"
ENDPOINT=$FLOE_TEST_GARAGE_ENDPOINT
if [ -n "$LATENCY" ]; then
    # --record mode forwards every request unchanged; the log is not needed.
    exec 3< <(python3 "$PROJECT_DIR/tests/servers/flaky_proxy.py" "$ENDPOINT" "$BENCH_DIR/proxy-stats.json" \
        --record /dev/null --latency "$LATENCY")
    read -r -u 3 PROXY_PORT
    PROXY_PID=$(pgrep -f "flaky_proxy.py $ENDPOINT" | head -n 1)
    ENDPOINT=http://127.0.0.1:$PROXY_PORT
    echo "== every request through a proxy adding ${LATENCY} ms each way: $ENDPOINT" >&2
fi
export AWS_ACCESS_KEY_ID=$FLOE_TEST_GARAGE_KEY_ID AWS_SECRET_ACCESS_KEY=$FLOE_TEST_GARAGE_SECRET
export AWS_EC2_METADATA_DISABLED=true FLOE_S3_REGION=garage
export FLOE_PASSWORD=bench RESTIC_PASSWORD=bench
[ -n "$CONNECTIONS" ] && export FLOE_CONNECTIONS=$CONNECTIONS

WORK="$BENCH_DIR/s3"
rm -rf "$WORK"
mkdir -p "$WORK"
RESULTS="$BENCH_DIR/s3-results.tsv"
printf 'run\ttool\tstep\tseconds\tmax_rss_kib\n' >"$RESULTS"

# timed RUN TOOL STEP CMD...: runs CMD under GNU time and appends a line to the results.
timed() {
    local run=$1 tool=$2 step=$3
    shift 3
    "$GNU_TIME" -f '%e %M' -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || {
        echo "$tool $step failed:" >&2
        cat "$WORK/err" >&2
        exit 1
    }
    read -r secs rss <"$WORK/time"
    printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$tool" "$step" "$secs" "$rss" >>"$RESULTS"
}

same() {
    diff -r "$DATASET" "$1${DATASET}" >/dev/null || { echo "restore into $1 differs from the dataset" >&2; exit 1; }
    rm -rf "$1"
}

# Before each backup: empty the page cache when the script may (as root), so that no tool pays
# for reclaiming what the one before wrote, then read the dataset so that every tool reads it
# from the page cache.
warm_up() {
    sync
    if [[ -w /proc/sys/vm/drop_caches ]]; then
        echo 1 2>/dev/null >/proc/sys/vm/drop_caches || true
    fi
    find "$DATASET" -type f -exec cat {} + >/dev/null
}

for run in $(seq 1 "$RUNS"); do
    local_repo="$WORK/local-$run"
    s3_repo="s3:$ENDPOINT/$FLOE_TEST_GARAGE_BUCKET/bench-$run-$RANDOM"
    restic_repo="s3:$ENDPOINT/$FLOE_TEST_GARAGE_BUCKET/restic-$run-$RANDOM"

    if [ -z "$LATENCY" ]; then
        "$FLOE" -r "$local_repo" init >/dev/null
        warm_up
        timed "$run" floe-local backup "$FLOE" -r "$local_repo" backup "$DATASET"
        timed "$run" floe-local restore "$FLOE" -r "$local_repo" restore latest --target "$WORK/r"
        same "$WORK/r"
        rm -rf "$local_repo"
    fi

    "$FLOE" -r "$s3_repo" init >/dev/null
    warm_up
    timed "$run" floe-garage backup "$FLOE" -r "$s3_repo" backup "$DATASET"
    timed "$run" floe-garage restore "$FLOE" -r "$s3_repo" restore latest --target "$WORK/r"
    same "$WORK/r"

    if [ -n "$RESTIC" ]; then
        "$RESTIC" -r "$restic_repo" -o s3.region=garage init --repository-version 2 >/dev/null
        warm_up
        timed "$run" restic-garage backup "$RESTIC" -r "$restic_repo" -o s3.region=garage backup "$DATASET"
        timed "$run" restic-garage restore "$RESTIC" -r "$restic_repo" -o s3.region=garage restore latest --target "$WORK/r"
        same "$WORK/r"
    fi
done

python3 - "$RESULTS" "$BYTES" "$LATENCY" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
size = int(sys.argv[2])
print(f"dataset: {size / 2**20:.0f} MiB; medians of {max(int(r['run']) for r in rows)} runs"
      + (f"; {sys.argv[3]} ms added each way" if sys.argv[3] else ""))
print(f"{'tool':<14} {'step':<8} {'seconds':>8} {'MB/s':>7} {'peak RSS':>9}  runs")
for tool in dict.fromkeys(r["tool"] for r in rows):
    for step in ("backup", "restore"):
        rs = [r for r in rows if r["tool"] == tool and r["step"] == step]
        if not rs:
            continue
        secs = statistics.median(float(r["seconds"]) for r in rs)
        rss = statistics.median(int(r["max_rss_kib"]) for r in rs) / 1024
        each = ", ".join(r["seconds"] for r in rs)
        print(f"{tool:<14} {step:<8} {secs:>8.2f} {size / secs / 1e6:>7.0f} {rss:>7.0f} MiB  {each}")

def median(tool, step, key):
    xs = [float(r[key]) for r in rows if r["tool"] == tool and r["step"] == step]
    return statistics.median(xs) if xs else None

for step in ("backup", "restore"):
    f, r = median("floe-garage", step, "seconds"), median("restic-garage", step, "seconds")
    fm, rm = median("floe-garage", step, "max_rss_kib"), median("restic-garage", step, "max_rss_kib")
    if f and r:
        print(f"floe/restic through Garage, {step}: {r / f:.2f}x the speed, {fm / rm:.2f}x the peak RSS")
PY
