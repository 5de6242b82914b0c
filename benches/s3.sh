#!/usr/bin/env bash
# Throughput through S3: floe to a local repository and to the 3-node Garage cluster of the
# tests, and restic to the same cluster, on the same generated dataset.
#
# Usage: benches/s3.sh [--scale S] [--runs N] [--connections N]
#
#   --scale S        dataset size factor (1.0 is about 1 GiB; default 0.5)
#   --runs N         repetitions (default 3)
#   --connections N  floe's --connections (default: floe's default)
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
while [[ $# -gt 0 ]]; do
    case "$1" in
        --scale) SCALE=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
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

DATASET="$BENCH_DIR/dataset-s$SCALE-seed42"
if [ ! -d "$DATASET" ]; then
    python3 "$SCRIPT_DIR/make_dataset.py" "$DATASET" --scale "$SCALE" --seed 42 >&2
fi
BYTES=$(du -sb "$DATASET" | cut -f1)

# A cluster of its own, apart from one the tests may be using.
export FLOE_TEST_SERVERS="$BENCH_DIR/servers"
"$PROJECT_DIR/tests/servers/garage.sh" start
trap '"$PROJECT_DIR/tests/servers/garage.sh" stop >/dev/null 2>&1 || true' EXIT
. "$FLOE_TEST_SERVERS/garage/env"
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

# Read the dataset once so that every tool reads it from the page cache.
find "$DATASET" -type f -exec cat {} + >/dev/null
for run in $(seq 1 "$RUNS"); do
    local_repo="$WORK/local-$run"
    s3_repo="s3:$FLOE_TEST_GARAGE_ENDPOINT/$FLOE_TEST_GARAGE_BUCKET/bench-$run-$RANDOM"
    restic_repo="s3:$FLOE_TEST_GARAGE_ENDPOINT/$FLOE_TEST_GARAGE_BUCKET/restic-$run-$RANDOM"

    "$FLOE" -r "$local_repo" init >/dev/null
    timed "$run" floe-local backup "$FLOE" -r "$local_repo" backup "$DATASET"
    timed "$run" floe-local restore "$FLOE" -r "$local_repo" restore latest --target "$WORK/r"
    same "$WORK/r"
    rm -rf "$local_repo"

    "$FLOE" -r "$s3_repo" init >/dev/null
    timed "$run" floe-garage backup "$FLOE" -r "$s3_repo" backup "$DATASET"
    timed "$run" floe-garage restore "$FLOE" -r "$s3_repo" restore latest --target "$WORK/r"
    same "$WORK/r"

    if [ -n "$RESTIC" ]; then
        "$RESTIC" -r "$restic_repo" -o s3.region=garage init --repository-version 2 >/dev/null
        timed "$run" restic-garage backup "$RESTIC" -r "$restic_repo" -o s3.region=garage backup "$DATASET"
        timed "$run" restic-garage restore "$RESTIC" -r "$restic_repo" -o s3.region=garage restore latest --target "$WORK/r"
        same "$WORK/r"
    fi
done

python3 - "$RESULTS" "$BYTES" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
size = int(sys.argv[2])
print(f"dataset: {size / 2**20:.0f} MiB; medians of {max(int(r['run']) for r in rows)} runs")
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
PY
