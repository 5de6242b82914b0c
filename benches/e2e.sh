#!/usr/bin/env bash
# End-to-end benchmark: floe vs restic (and rustic, when installed) on the same
# tree: a generated dataset, or any real folder.
#
# Usage: benches/e2e.sh [--tree DIR | --scale S --seed N] [--runs N]
#
#   --tree DIR  back up this existing folder instead of a generated dataset
#               (read only; it should not change during the run)
#   --scale S   dataset size factor (1.0 is about 1 GiB; default 1.0)
#   --runs N    repetitions of the whole sequence per tool (default 3)
#   --seed N    dataset seed (default 42)
#
# Environment:
#   BENCH_DIR   work folder for dataset, repositories, restores, logs and
#               results (default: <project>/bench-work). Nothing outside it
#               is written.
#   FLOE_BIN    floe binary (default: <project>/target/release/floe)
#   RESTIC_BIN  restic binary (default: restic from PATH)
#   RUSTIC_BIN  rustic binary (default: rustic from PATH, then ~/.cargo/bin;
#               left out when there is none)
#
# For each run, both tools get a fresh repository under BENCH_DIR and go
# through: init (untimed), first backup, unchanged re-backup, restore of
# `latest` into an empty folder (verified with diff -r against the tree),
# the structure check and `check --read-data`; then an untimed backup that
# leaves out one folder of the tree (the one holding closest to a tenth of
# its files) and a timed `forget --keep-last 1 --prune`, which drops the
# first two snapshots and repacks or deletes what only they used.
# Every timed step is measured with GNU time (wall seconds, peak RSS, CPU).
# Before each tool's backups the page cache is emptied when the script may
# (as root: /proc/sys/vm/drop_caches), so that no tool pays for reclaiming
# what the tools before it wrote (a restore writes the whole tree again), and
# the dataset is then read once (untimed) so that every tool reads it from
# the page cache.
# The tool order rotates between runs. Results: a table on stdout and
# BENCH_DIR/results.json.

set -euo pipefail

SCALE=1.0
RUNS=3
SEED=42
TREE=""

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2
    exit "${1:-2}"
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --scale) SCALE=${2:?--scale needs a value}; shift 2 ;;
        --scale=*) SCALE=${1#*=}; shift ;;
        --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
        --runs=*) RUNS=${1#*=}; shift ;;
        --seed) SEED=${2:?--seed needs a value}; shift 2 ;;
        --seed=*) SEED=${1#*=}; shift ;;
        --tree) TREE=${2:?--tree needs a folder}; shift 2 ;;
        --tree=*) TREE=${1#*=}; shift ;;
        -h|--help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "--runs must be a positive integer" >&2; exit 2; }
[[ "$SEED" =~ ^[0-9]+$ ]] || { echo "--seed must be a non-negative integer" >&2; exit 2; }
[[ "$SCALE" =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "--scale must be a positive number" >&2; exit 2; }
SCALE=$(printf '%g' "$SCALE")
if [[ -n "$TREE" ]]; then
    [[ -d "$TREE" ]] || { echo "--tree: $TREE is not a folder" >&2; exit 2; }
    TREE=$(cd "$TREE" && pwd -P)
fi

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=$(dirname "$SCRIPT_DIR")
BENCH_DIR=${BENCH_DIR:-$PROJECT_DIR/bench-work}
FLOE=${FLOE_BIN:-$PROJECT_DIR/target/release/floe}
RESTIC=${RESTIC_BIN:-restic}
if [[ -n "${RUSTIC_BIN:-}" ]]; then
    RUSTIC=$(command -v "$RUSTIC_BIN" || echo "$RUSTIC_BIN")
else
    RUSTIC=$(command -v rustic || echo "$HOME/.cargo/bin/rustic")
fi
GNU_TIME=/usr/bin/time

command -v "$RESTIC" >/dev/null || { echo "restic not found ($RESTIC)" >&2; exit 1; }
[[ -x "$FLOE" ]] || { echo "floe binary not found at $FLOE (set FLOE_BIN)" >&2; exit 1; }
[[ -x "$GNU_TIME" ]] || { echo "GNU time not found at $GNU_TIME" >&2; exit 1; }
RESTIC=$(command -v "$RESTIC")
TOOLS=(floe restic)
if [[ -x "$RUSTIC" ]]; then
    TOOLS+=(rustic)
elif [[ -n "${RUSTIC_BIN:-}" ]]; then
    echo "rustic binary not found at $RUSTIC_BIN" >&2
    exit 1
fi

# The tree is only read: the work folder and the tree must not overlap either way.
if [[ -n "$TREE" ]]; then
    bench_abs=$(realpath -m "$BENCH_DIR")
    case "${bench_abs%/}/" in "${TREE%/}/"*) echo "BENCH_DIR must not lie inside the tree" >&2; exit 2 ;; esac
    case "${TREE%/}/" in "${bench_abs%/}/"*) echo "the tree must not lie inside BENCH_DIR" >&2; exit 2 ;; esac
fi
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd -P)
if [[ "$BENCH_DIR" == "/" || "$BENCH_DIR" == "$HOME" || "$BENCH_DIR" == "$PROJECT_DIR" ]]; then
    echo "refusing to use BENCH_DIR=$BENCH_DIR" >&2
    exit 1
fi

# Remove a path, but only if it lies inside BENCH_DIR.
safe_rm() {
    local p
    for p in "$@"; do
        case "$p" in
            "$BENCH_DIR"/?*) rm -rf -- "$p" ;;
            *) echo "internal error: refusing to remove $p (outside $BENCH_DIR)" >&2; exit 1 ;;
        esac
    done
}

# Credentials and repository selection only through what this script sets.
unset FLOE_REPOSITORY FLOE_PASSWORD_FILE FLOE_PASSWORD_COMMAND
unset RESTIC_REPOSITORY RESTIC_REPOSITORY_FILE RESTIC_PASSWORD_FILE RESTIC_PASSWORD_COMMAND
unset RUSTIC_REPOSITORY RUSTIC_PASSWORD_FILE RUSTIC_PASSWORD_COMMAND
export FLOE_PASSWORD=floe-bench-password
export RESTIC_PASSWORD=restic-bench-password
export RUSTIC_PASSWORD=rustic-bench-password

RESTIC_VERSION=$("$RESTIC" version 2>&1 | head -n1)
FLOE_VERSION=$("$FLOE" --version 2>&1 | head -n1)
RUSTIC_VERSION=none
if [[ " ${TOOLS[*]} " == *" rustic "* ]]; then
    RUSTIC_VERSION=$("$RUSTIC" --version 2>&1 | head -n1)
fi

# restic: use repository format 2 (compressed, --compression auto is the
# default there) when this restic supports it, so both tools compress.
RESTIC_INIT_FLAGS=()
if "$RESTIC" init --help 2>&1 | grep -q -- '--repository-version'; then
    RESTIC_INIT_FLAGS=(--repository-version 2)
fi

echo "== floe:   $FLOE_VERSION ($FLOE)"
echo "== restic: $RESTIC_VERSION ($RESTIC) init flags: ${RESTIC_INIT_FLAGS[*]:-(none)}"
echo "== rustic: $RUSTIC_VERSION"
echo "== bench dir: $BENCH_DIR, runs $RUNS, $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- dataset
DATASET="$BENCH_DIR/dataset-s$SCALE-seed$SEED"
DATASET_SUMMARY="$DATASET.json"
if [[ -n "$TREE" ]]; then
    DATASET=$TREE
    DATASET_SUMMARY=/dev/null
    echo "== tree $TREE"
elif [[ -d "$DATASET" && -f "$DATASET_SUMMARY" ]]; then
    echo "== reusing dataset $DATASET"
else
    safe_rm "$DATASET" "$DATASET_SUMMARY"
    echo "== generating dataset $DATASET"
    python3 "$SCRIPT_DIR/make_dataset.py" "$DATASET" --scale "$SCALE" --seed "$SEED" \
        --summary-json "$DATASET_SUMMARY.tmp"
    mv "$DATASET_SUMMARY.tmp" "$DATASET_SUMMARY"
fi
DATASET_BYTES=$(find "$DATASET" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')
DATASET_FILES=$(find "$DATASET" -type f | wc -l)
echo "== dataset: $DATASET_FILES files, $DATASET_BYTES bytes"
# The folder the third backup leaves out, so that prune has something to do.
PRUNED=$(python3 - "$DATASET" <<'PY'
import os, sys
root = sys.argv[1]
counts = {}
for d, _, files in os.walk(root):
    p = d
    while True:
        counts[p] = counts.get(p, 0) + len(files)
        if p == root:
            break
        p = os.path.dirname(p)
total = counts[root]
print(min((p for p in counts if p != root), key=lambda p: abs(counts[p] - total / 10), default=""))
PY
)
[[ -n "$PRUNED" ]] || { echo "the tree has no sub-folder to leave out for the prune step" >&2; exit 2; }
echo "== prune step: the third backup leaves out $PRUNED"

warm_up() {
    sync
    if [[ -w /proc/sys/vm/drop_caches ]]; then
        echo 1 2>/dev/null >/proc/sys/vm/drop_caches || true
    fi
    find "$DATASET" -type f -exec cat {} + >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------- runs
OUT="$BENCH_DIR/e2e"
mkdir -p "$OUT"
MEASUREMENTS="$OUT/measurements.tsv"
REPO_SIZES="$OUT/repo-sizes.tsv"
VERIFY="$OUT/verify.tsv"
: >"$MEASUREMENTS"
: >"$REPO_SIZES"
: >"$VERIFY"

RUN_DIR=""
FAILURES=0

# measure TOOL STEP RUN COMMAND...: run COMMAND under GNU time, append
# "tool step run wall_s maxrss_kib user_s sys_s" to MEASUREMENTS.
measure() {
    local tool=$1 step=$2 run=$3
    shift 3
    local log="$RUN_DIR/$tool-$step.log" tf="$RUN_DIR/$tool-$step.time"
    sync
    if ! "$GNU_TIME" -f '%e %M %U %S' -o "$tf" "$@" >"$log" 2>&1; then
        echo "!! $tool $step failed (run $run): $*" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
    local wall rss user sys
    read -r wall rss user sys < <(tail -n 1 "$tf")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$step" "$run" "$wall" "$rss" "$user" "$sys" >>"$MEASUREMENTS"
    printf '   %-6s %-9s %8.2f s  %8.1f MiB RSS  %7.2f s CPU\n' \
        "$tool" "$step" "$wall" "$(awk -v k="$rss" 'BEGIN {print k / 1024}')" \
        "$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')"
}

verify_restore() {
    local tool=$1 run=$2 target=$3
    local restored="$target$DATASET"
    if [[ -d "$restored" ]] && diff -r -q "$DATASET" "$restored" >"$RUN_DIR/$tool-verify.log" 2>&1; then
        printf '%s\t%s\tok\n' "$tool" "$run" >>"$VERIFY"
        echo "   $tool restore verified (diff -r identical)"
    else
        printf '%s\t%s\tFAILED\n' "$tool" "$run" >>"$VERIFY"
        echo "!! $tool restore differs from the dataset (run $run), see $RUN_DIR/$tool-verify.log" >&2
        head -n 20 "$RUN_DIR/$tool-verify.log" >&2 || true
        FAILURES=$((FAILURES + 1))
    fi
}

bench_floe() {
    local run=$1 repo="$RUN_DIR/floe-repo" target="$RUN_DIR/floe-restore"
    "$FLOE" -r "$repo" init >"$RUN_DIR/floe-init.log" 2>&1
    warm_up
    measure floe backup "$run" "$FLOE" -r "$repo" backup "$DATASET"
    measure floe rebackup "$run" "$FLOE" -r "$repo" backup "$DATASET"
    printf 'floe\t%s\t%s\n' "$run" "$(du -sb "$repo" | cut -f1)" >>"$REPO_SIZES"
    mkdir -p "$target"
    measure floe restore "$run" "$FLOE" -r "$repo" restore latest --target "$target"
    measure floe check "$run" "$FLOE" -r "$repo" check
    measure floe read-data "$run" "$FLOE" -r "$repo" check --read-data
    "$FLOE" -r "$repo" backup --exclude "$PRUNED" "$DATASET" >"$RUN_DIR/floe-backup3.log" 2>&1
    measure floe prune "$run" "$FLOE" -r "$repo" forget --keep-last 1 --prune
    verify_restore floe "$run" "$target"
    safe_rm "$target"
}

bench_restic() {
    local run=$1 repo="$RUN_DIR/restic-repo" target="$RUN_DIR/restic-restore"
    local cache=(--cache-dir "$RUN_DIR/restic-cache")
    "$RESTIC" -r "$repo" "${cache[@]}" init "${RESTIC_INIT_FLAGS[@]}" >"$RUN_DIR/restic-init.log" 2>&1
    warm_up
    measure restic backup "$run" "$RESTIC" -r "$repo" "${cache[@]}" backup "$DATASET"
    measure restic rebackup "$run" "$RESTIC" -r "$repo" "${cache[@]}" backup "$DATASET"
    printf 'restic\t%s\t%s\n' "$run" "$(du -sb "$repo" | cut -f1)" >>"$REPO_SIZES"
    mkdir -p "$target"
    measure restic restore "$run" "$RESTIC" -r "$repo" "${cache[@]}" restore latest --target "$target"
    measure restic check "$run" "$RESTIC" -r "$repo" "${cache[@]}" check
    measure restic read-data "$run" "$RESTIC" -r "$repo" "${cache[@]}" check --read-data
    "$RESTIC" -r "$repo" "${cache[@]}" backup --exclude "$PRUNED" "$DATASET" >"$RUN_DIR/restic-backup3.log" 2>&1
    measure restic prune "$run" "$RESTIC" -r "$repo" "${cache[@]}" forget --keep-last 1 --prune
    verify_restore restic "$run" "$target"
    safe_rm "$target"
}

bench_rustic() {
    local run=$1 repo="$RUN_DIR/rustic-repo" target="$RUN_DIR/rustic-restore"
    local common=(-r "$repo" --cache-dir "$RUN_DIR/rustic-cache")
    "$RUSTIC" "${common[@]}" init >"$RUN_DIR/rustic-init.log" 2>&1
    warm_up
    measure rustic backup "$run" "$RUSTIC" "${common[@]}" backup "$DATASET"
    measure rustic rebackup "$run" "$RUSTIC" "${common[@]}" backup "$DATASET"
    printf 'rustic\t%s\t%s\n' "$run" "$(du -sb "$repo" | cut -f1)" >>"$REPO_SIZES"
    mkdir -p "$target"
    measure rustic restore "$run" "$RUSTIC" "${common[@]}" restore latest "$target"
    measure rustic check "$run" "$RUSTIC" "${common[@]}" check
    measure rustic read-data "$run" "$RUSTIC" "${common[@]}" check --read-data
    "$RUSTIC" "${common[@]}" backup --glob "!$PRUNED" "$DATASET" >"$RUN_DIR/rustic-backup3.log" 2>&1
    measure rustic prune "$run" "$RUSTIC" "${common[@]}" forget --keep-last 1 --prune
    verify_restore rustic "$run" "$target"
    safe_rm "$target"
}

for ((run = 1; run <= RUNS; run++)); do
    RUN_DIR="$OUT/run-$run"
    safe_rm "$RUN_DIR"
    mkdir -p "$RUN_DIR"
    # Rotate the order, so that no tool always runs first (or right after another's writes).
    order=()
    for ((i = 0; i < ${#TOOLS[@]}; i++)); do
        order+=("${TOOLS[(i + run - 1) % ${#TOOLS[@]}]}")
    done
    echo "== run $run/$RUNS (order: ${order[*]}, load: $(cut -d' ' -f1-3 /proc/loadavg))"
    for tool in "${order[@]}"; do
        "bench_$tool" "$run"
    done
done

# ---------------------------------------------------------------- report
export DATASET DATASET_BYTES DATASET_FILES DATASET_SUMMARY SCALE SEED RUNS \
    FLOE FLOE_VERSION RESTIC RESTIC_VERSION RUSTIC RUSTIC_VERSION MEASUREMENTS REPO_SIZES VERIFY
export TOOLS_STR="${TOOLS[*]}" TREE
export RESTIC_INIT_FLAGS_STR="${RESTIC_INIT_FLAGS[*]:-}"
export RESULTS_JSON="$BENCH_DIR/results.json"
export LOADAVG_END="$(cut -d' ' -f1-3 /proc/loadavg)"
export NPROC="$(nproc)"

python3 - <<'PY'
import json, os, statistics

env = os.environ
bytes_ = int(env["DATASET_BYTES"])
tools = env["TOOLS_STR"].split()
others = [t for t in tools if t != "floe"]
steps = ["backup", "rebackup", "restore", "check", "read-data", "prune"]

samples = {t: {s: [] for s in steps} for t in tools}
with open(env["MEASUREMENTS"]) as f:
    for line in f:
        tool, step, run, wall, rss, user, sys_ = line.split("\t")
        samples[tool][step].append(
            {"run": int(run), "wall_s": float(wall), "max_rss_kib": int(rss),
             "cpu_s": round(float(user) + float(sys_), 2)})

repo = {t: [] for t in tools}
with open(env["REPO_SIZES"]) as f:
    for line in f:
        tool, run, size = line.split("\t")
        repo[tool].append(int(size))

verify = {t: [] for t in tools}
with open(env["VERIFY"]) as f:
    for line in f:
        tool, run, status = line.strip().split("\t")
        verify[tool].append(status)

results = {}
for t in tools:
    results[t] = {}
    for s in steps:
        xs = samples[t][s]
        med = statistics.median(x["wall_s"] for x in xs)
        results[t][s] = {
            "median_s": med,
            "mb_per_s": round(bytes_ / med / 1e6, 1) if med > 0 else None,
            "median_max_rss_mib": round(statistics.median(x["max_rss_kib"] for x in xs) / 1024, 1),
            "median_cpu_s": round(statistics.median(x["cpu_s"] for x in xs), 2),
            "samples": xs,
        }

ratios = {o: {} for o in others}
for o in others:
    for s in steps:
        f_, r_ = results["floe"][s]["median_s"], results[o][s]["median_s"]
        ratios[o][s] = round(r_ / f_, 2) if f_ > 0 else None

repo_sizes = {t: {"median_bytes": int(statistics.median(repo[t])), "samples": repo[t]} for t in tools}

print()
origin = "a real tree" if env["TREE"] else f"scale {env['SCALE']}, seed {env['SEED']}"
print(f"dataset: {env['DATASET']}  {env['DATASET_FILES']} files, {bytes_} bytes "
      f"({bytes_ / 2**20:.1f} MiB), {origin}")
print(f"floe:    {env['FLOE_VERSION']}")
print(f"restic:  {env['RESTIC_VERSION']}  (init flags: {env['RESTIC_INIT_FLAGS_STR'] or 'none'})")
if "rustic" in tools:
    print(f"rustic:  {env['RUSTIC_VERSION']}")
print(f"runs: {env['RUNS']} (medians below), CPUs: {env['NPROC']}, load at end: {env['LOADAVG_END']}")
print()
hdr = f"{'tool':<7} {'step':<9} {'median s':>9} {'MB/s':>8} {'RSS MiB':>8} {'CPU s':>7}  all runs (s)"
print(hdr)
print("-" * len(hdr))
for t in tools:
    for s in steps:
        r = results[t][s]
        runs = " ".join(f"{x['wall_s']:.2f}" for x in r["samples"])
        mbs = f"{r['mb_per_s']:.1f}" if r["mb_per_s"] is not None else "inf"
        print(f"{t:<7} {s:<9} {r['median_s']:>9.2f} {mbs:>8} {r['median_max_rss_mib']:>8.1f} "
              f"{r['median_cpu_s']:>7.2f}  {runs}")
print()
for o in others:
    print(f"speed ratio floe/{o} ({o} median s / floe median s; >1 means floe is faster):")
    for s in steps:
        v = ratios[o][s]
        print(f"  {s:<9} {v if v is not None else 'n/a'}")
    print("peak RSS ratio floe/%s (<1 means floe uses less):" % o)
    for s in steps:
        f_, o_ = results["floe"][s]["median_max_rss_mib"], results[o][s]["median_max_rss_mib"]
        print(f"  {s:<9} {round(f_ / o_, 2) if o_ > 0 else 'n/a'}")
print()
print("repository size after backup + re-backup (du -sb, median):")
for t in tools:
    b = repo_sizes[t]["median_bytes"]
    print(f"  {t:<7} {b:>12} bytes  {b / 2**20:8.1f} MiB  ({b / bytes_ * 100:.1f} % of dataset)")
print()
ok = all(v == "ok" for t in tools for v in verify[t])
print("restore verification:", "all identical" if ok else f"FAILURES: {verify}")

summary = {}
try:
    with open(env["DATASET_SUMMARY"]) as f:
        summary = json.load(f)
except (OSError, ValueError):
    pass

out = {
    "dataset": {"path": env["DATASET"], "files": int(env["DATASET_FILES"]), "bytes": bytes_,
                "real_tree": bool(env["TREE"]),
                **({} if env["TREE"] else {"scale": float(env["SCALE"]), "seed": int(env["SEED"]),
                                           "generator": summary})},
    "versions": {t: env[t.upper() + "_VERSION"] for t in tools},
    "binaries": {t: env[t.upper()] for t in tools},
    "restic_init_flags": env["RESTIC_INIT_FLAGS_STR"].split(),
    "runs": int(env["RUNS"]),
    "cpus": int(env["NPROC"]),
    "load_at_end": env["LOADAVG_END"],
    "units": {"mb_per_s": "dataset bytes / median wall seconds / 1e6",
              "speed_ratio": "other tool's median s / floe median s"},
    "results": results,
    "speed_ratio_floe_over": ratios,
    "repo_size": repo_sizes,
    "restore_verified": verify,
}
with open(env["RESULTS_JSON"], "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
print(f"results written to {env['RESULTS_JSON']}")
PY

if ((FAILURES > 0)); then
    echo "!! $FAILURES restore verification(s) failed" >&2
    exit 1
fi
