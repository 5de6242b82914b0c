#!/usr/bin/env bash
# The long fuzzing run, by hand: each target in turn for a budget of CPU time (an hour unless
# FUZZ_CPU_SECONDS says otherwise), with the figures of each target written to a summary
# (docs/fuzzing.md).
#
#   fuzz/long-run.sh                 every target
#   fuzz/long-run.sh tree pack       only these targets
#
# The budget counts the fuzzer's CPU time, not the clock, so that a run beside other work (at a
# low priority, `nice -n 19`) still gets its whole hour. A run can be stopped and resumed: stop it
# with SIGTERM (`kill PID`; Ctrl-C in a terminal), never with SIGSTOP (libFuzzer times each input
# by the clock and reports the input it was on when paused as a hang), and start it again with the
# same targets. Two runs with different targets can share the folder, one per core. Each target
# keeps its working corpus, the CPU seconds it has spent and its executions in FUZZ_LOG_DIR
# (fuzz/target/long-run), so the next start carries on with the rest of its budget; a target whose
# budget is spent is not run again (remove its `.spent` and `.execs` files to run it anew). An input that
# crashes goes to fuzz/artifacts/TARGET/.
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

# CPU seconds used by process $1 so far (user and system).
cpu_seconds() {
    awk -v t="$ticks" '{ printf "%d", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# A number kept in file $1, 0 when there is none.
stored() {
    local v
    v=$(cat "$1" 2>/dev/null || true)
    echo "${v:-0}"
}

# Keeps number $2 in file $1, replacing the file whole.
store() { echo "$2" >"$1.new" && mv "$1.new" "$1"; }

# Executions reported by the last piece's log $1.
piece_execs() {
    grep -oE 'stat::number_of_executed_units: [0-9]+' "$1" | tail -n 1 | grep -oE '[0-9]+$' || echo 0
}

fuzzer=""
stopping=0
on_signal() {
    stopping=1
    if [ -n "$fuzzer" ]; then kill -INT "$fuzzer" 2>/dev/null || true; fi
}
trap on_signal INT TERM

# Runs target $1 for what is left of its budget, or until it stops on a finding; adds the piece's
# CPU seconds and executions to the target's totals and sets `rc` to the fuzzer's exit status.
run_piece() {
    local t=$1 spent cpu=0 now left piece="$logs/$1.piece.log"
    spent=$(stored "$logs/$t.spent")
    left=$((budget - spent))
    mkdir -p "$logs/corpus/$t" "artifacts/$t"
    "$bin/$t" "$logs/corpus/$t" "corpus/$t" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$piece" 2>&1 &
    fuzzer=$!
    while kill -0 "$fuzzer" 2>/dev/null; do
        # Read as 0 once the process is gone: the figure only grows.
        now=$(cpu_seconds "$fuzzer")
        if [ "$now" -gt "$cpu" ]; then cpu=$now; fi
        # Again while stopping: a signal sent before libFuzzer handles it is lost.
        if [ "$cpu" -ge "$left" ] || [ "$stopping" = 1 ]; then
            kill -INT "$fuzzer" 2>/dev/null || true
        fi
        [ "$cpu" -lt "$left" ] || break
        sleep 5 || true
    done
    rc=0
    wait "$fuzzer" || rc=$?
    # A signal to this script interrupts `wait` before the fuzzer ends: wait again for its status.
    while kill -0 "$fuzzer" 2>/dev/null; do
        rc=0
        wait "$fuzzer" || rc=$?
    done
    fuzzer=""
    store "$logs/$t.spent" $((spent + cpu))
    store "$logs/$t.execs" $(($(stored "$logs/$t.execs") + $(piece_execs "$piece")))
    { echo "== piece from $((spent)) CPU seconds, $(date -u +%FT%TZ)"; cat "$piece"; } >>"$logs/$t.log"
    rm -f "$piece"
}

# One line of figures for target $1, whose last piece ended with status $2.
summarize() {
    local t=$1 rc=$2 log="$logs/$1.log" cov ft
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+$' || echo "?")
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+$' || echo "?")
    local verdict="clean"
    # libFuzzer exits 72 when interrupted at the end of its budget, 0 when it ran out of inputs.
    if [ "$rc" != 0 ] && [ "$rc" != 72 ]; then verdict="FOUND (exit $rc): see $log"; fi
    printf '%-18s %12s execs  %6s CPU s  cov %6s  ft %7s  %s\n' "$t" \
        "$(stored "$logs/$t.execs")" "$(stored "$logs/$t.spent")" "$cov" "$ft" "$verdict"
}

failed=0
for t in "${targets[@]}"; do
    [ "$stopping" = 0 ] || break
    if [ "$(stored "$logs/$t.spent")" -ge "$budget" ]; then
        echo "fuzz: $t has had its ${budget} CPU seconds"
        continue
    fi
    echo "fuzz: $t from $(stored "$logs/$t.spent") of ${budget} CPU seconds ($(date -u +%H:%M:%S))"
    run_piece "$t"
    if [ "$stopping" = 1 ] && [ "$rc" = 72 ] && [ "$(stored "$logs/$t.spent")" -lt "$budget" ]; then
        echo "fuzz: stopped; $t resumes from $(stored "$logs/$t.spent") CPU seconds"
        break
    fi
    line=$(summarize "$t" "$rc")
    echo "$line" | tee -a "$logs/summary"
    case "$line" in *FOUND*) failed=1 ;; esac
done
exit "$failed"
