#!/usr/bin/env bash
# Commands that read metadata, through the Garage cluster behind a proxy that adds latency and
# counts requests: floe with a warm cache, floe with --no-cache, and restic (with its own warm
# cache), on one real tree.
#
# Usage: benches/cache.sh --tree DIR [--runs N] [--latency MS]
#
#   --tree DIR     the folder to back up (a real tree: a toolchain, a source checkout)
#   --runs N       repetitions of each command (default 3; medians are printed)
#   --latency MS   milliseconds the proxy adds each way (default 25: a 50 ms round trip)
#
# Output: for each command and tool, the median wall time and the GET requests of objects the
# proxy saw (listings not counted), on stdout; raw figures in BENCH_DIR/cache-results.tsv, and
# what each GET fetched in BENCH_DIR/cache/gets.txt.
#
# Environment: BENCH_DIR (default <project>/bench-work), FLOE_BIN (default
# target/release/floe), RESTIC_BIN (default restic from PATH; skipped when absent).
set -euo pipefail

TREE=
RUNS=3
LATENCY=25
while [[ $# -gt 0 ]]; do
    case "$1" in
        --tree) TREE=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --latency) LATENCY=$2; shift 2 ;;
        *) sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
    esac
done
[ -d "$TREE" ] || { echo "give --tree DIR, a folder to back up" >&2; exit 2; }
TREE=$(cd "$TREE" && pwd)

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=$(dirname "$SCRIPT_DIR")
BENCH_DIR=${BENCH_DIR:-$PROJECT_DIR/bench-work}
FLOE=${FLOE_BIN:-$PROJECT_DIR/target/release/floe}
RESTIC=${RESTIC_BIN:-$(command -v restic || true)}
[ -x "$FLOE" ] || { echo "no floe binary at $FLOE (cargo build --release)" >&2; exit 1; }

export FLOE_TEST_SERVERS="$BENCH_DIR/servers"
"$PROJECT_DIR/tests/servers/garage.sh" start
WORK="$BENCH_DIR/cache"
rm -rf "$WORK"
mkdir -p "$WORK"
PROXY_PID=
cleanup() {
    [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null || true
    "$PROJECT_DIR/tests/servers/garage.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
. "$FLOE_TEST_SERVERS/garage/env"
export AWS_ACCESS_KEY_ID=$FLOE_TEST_GARAGE_KEY_ID AWS_SECRET_ACCESS_KEY=$FLOE_TEST_GARAGE_SECRET
export AWS_EC2_METADATA_DISABLED=true FLOE_S3_REGION=garage AWS_DEFAULT_REGION=garage
export FLOE_PASSWORD=bench RESTIC_PASSWORD=bench FLOE_CACHE_DIR="$WORK/floe-cache"
export RESTIC_CACHE_DIR="$WORK/restic-cache"

LOG="$WORK/requests.log"
coproc PROXY { python3 "$PROJECT_DIR/tests/servers/flaky_proxy.py" "$FLOE_TEST_GARAGE_ENDPOINT" \
    "$WORK/proxy-stats.json" --record "$LOG" --latency "$LATENCY"; }
PROXY_PID=$PROXY_PID
read -r PORT <&"${PROXY[0]}"
ENDPOINT="http://127.0.0.1:$PORT"
BUCKET=$FLOE_TEST_GARAGE_BUCKET
FLOE_REPO="s3:$ENDPOINT/$BUCKET/bench-floe-$$"
RESTIC_REPO="s3:$ENDPOINT/$BUCKET/bench-restic-$$"

RESULTS="$BENCH_DIR/cache-results.tsv"
printf 'tool\tcommand\trun\tseconds\tgets\n' >"$RESULTS"

# Runs "$@" once; records wall seconds and the GETs of objects (not listings) it sent.
measure() {
    local tool=$1 name=$2 run=$3
    shift 3
    local before after start end
    before=$(wc -l <"$LOG" 2>/dev/null || echo 0)
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    # GETs of objects: a path of bucket and key (a listing's path is the bucket's alone).
    after=$(tail -n +"$((before + 1))" "$LOG" |
        awk '$1 == "GET" { split($2, p, "?"); if (p[1] ~ "^/[^/]+/.") n++ } END { print n + 0 }')
    tail -n +"$((before + 1))" "$LOG" | awk -v t="$tool $name" '$1 == "GET" { split($2, p, "?"); if (p[1] ~ "^/[^/]+/.") print t ": " p[1] }' >>"$WORK/gets.txt"
    printf '%s\t%s\t%s\t%.3f\t%s\n' "$tool" "$name" "$run" "$(echo "$end - $start" | bc)" "$after" >>"$RESULTS"
}

FIND_PATTERN='*.rs'
floe() { "$FLOE" -r "$FLOE_REPO" "$@"; }
floe_cold() { "$FLOE" -r "$FLOE_REPO" --no-cache "$@"; }
restic_() { "$RESTIC" -r "$RESTIC_REPO" -o s3.region=garage "$@"; }

floe init >/dev/null
floe backup "$TREE" >/dev/null
if [ -n "$RESTIC" ]; then
    restic_ init >/dev/null
    restic_ backup "$TREE" >/dev/null
fi

for run in $(seq 1 "$RUNS"); do
    for tool in floe floe_cold ${RESTIC:+restic_}; do
        measure "$tool" snapshots "$run" "$tool" snapshots
        measure "$tool" "ls latest" "$run" "$tool" ls latest
        measure "$tool" find "$run" "$tool" find "$FIND_PATTERN"
        measure "$tool" "unchanged backup" "$run" "$tool" backup "$TREE"
        measure "$tool" "forget --dry-run" "$run" "$tool" forget --keep-last 1 --dry-run
    done
done

python3 - "$RESULTS" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
names = {"floe": "floe, warm cache", "floe_cold": "floe --no-cache", "restic_": "restic, warm cache"}
commands = list(dict.fromkeys(r["command"] for r in rows))
tools = list(dict.fromkeys(r["tool"] for r in rows))
print("| command | " + " | ".join(names[t] for t in tools) + " |")
print("|---" * (len(tools) + 1) + "|")
for c in commands:
    cells = []
    for t in tools:
        rs = [r for r in rows if r["command"] == c and r["tool"] == t]
        sec = statistics.median(float(r["seconds"]) for r in rs)
        gets = statistics.median(int(r["gets"]) for r in rs)
        cells.append(f"{sec:.2f} s, {gets:.0f} GET")
    print(f"| {c} | " + " | ".join(cells) + " |")
PY
