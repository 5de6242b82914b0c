#!/usr/bin/env bash
# The long fuzzing run, by hand: each target in turn for a budget of CPU time (an hour unless
# FUZZ_CPU_SECONDS says otherwise), from a scratch copy of its corpus, with the figures of each
# run written to a summary (docs/fuzzing.md).
#
#   fuzz/long-run.sh                 every target
#   fuzz/long-run.sh tree pack       only these targets
#
# The budget counts the fuzzer's CPU time, not the clock, so that a run beside other work (at a
# low priority, `nice -n 19`) still gets its whole hour. Do not pause a run with SIGSTOP:
# libFuzzer times each input by the clock, and reports the input it was on when paused as a hang
# (such an input replays in a millisecond: `fuzz/target/.../TARGET ARTIFACT`). Logs and the
# summary go to FUZZ_LOG_DIR (fuzz/target/long-run); an input that crashes goes to
# fuzz/artifacts/TARGET/.
# Exits 1 when any target found a crash, a hang or an out-of-memory.
set -euo pipefail
cd "$(dirname "$0")"
budget="${FUZZ_CPU_SECONDS:-3600}"
logs="${FUZZ_LOG_DIR:-target/long-run}"
ticks="$(getconf CLK_TCK)"
bin="target/x86_64-unknown-linux-gnu/release"

cargo +nightly fuzz build
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
mkdir -p "$logs"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# CPU seconds used by process $1 so far (user and system).
cpu_seconds() {
    awk -v t="$ticks" '{ printf "%d", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# Runs target $1 until its budget is spent or it stops on a finding; prints its exit status.
run_target() {
    local t=$1 pid cpu
    mkdir -p "$scratch/$t" "artifacts/$t"
    "$bin/$t" "$scratch/$t" "corpus/$t" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$logs/$t.log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        cpu=$(cpu_seconds "$pid")
        if [ "$cpu" -ge "$budget" ]; then
            kill -INT "$pid" 2>/dev/null || true
            break
        fi
        sleep 5
    done
    local rc=0
    wait "$pid" || rc=$?
    echo "$rc"
}

# One line of figures from a finished run's log.
summarize() {
    local t=$1 rc=$2 log="$logs/$1.log" execs cov ft
    execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+$' || echo "?")
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+$' || echo "?")
    local verdict="clean"
    # libFuzzer exits 72 when interrupted at the end of its budget, 0 when it ran out of inputs.
    if [ "$rc" != 0 ] && [ "$rc" != 72 ]; then verdict="FOUND (exit $rc): see $log"; fi
    printf '%-18s %12s execs  cov %6s  ft %7s  %s\n' "$t" "$execs" "$cov" "$ft" "$verdict"
}

failed=0
for t in "${targets[@]}"; do
    echo "fuzz: $t for ${budget} CPU seconds ($(date -u +%H:%M:%S))"
    rc=$(run_target "$t")
    line=$(summarize "$t" "$rc")
    echo "$line" | tee -a "$logs/summary"
    case "$line" in *FOUND*) failed=1 ;; esac
done
exit "$failed"
