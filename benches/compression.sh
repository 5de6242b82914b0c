#!/usr/bin/env bash
# First backups of one folder with each --compression mode, and restic's, to compare time, CPU,
# memory and repository size.
#
# Usage: benches/compression.sh --tree DIR [--runs N] [MODE...]
#
#   --tree DIR  the folder to back up (read only)
#   --runs N    rounds (default 3); each round runs every mode once, in the order given
#   MODE        a --compression value (auto, off, fastest, better, max or a zstd level), or
#               `restic` for restic's first backup (format 2, its default compression);
#               default: auto fastest restic
#
# Every backup goes into a fresh repository under BENCH_DIR (default: a temporary folder). As
# root, the page cache is emptied before each backup; the tree is then read back in, so that
# every tool starts from a warm cache. Prints one line per backup: round, mode, wall seconds,
# user and system CPU seconds, peak RSS (KiB, GNU time) and repository bytes.
# FLOE_BIN and RESTIC_BIN choose the binaries (default: target/release/floe, restic).
set -euo pipefail
cd "$(dirname "$0")/.."
TREE="" RUNS=3 MODES=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --tree) TREE=${2:?--tree needs a folder}; shift 2 ;;
        --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0" | cut -c3-; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) MODES+=("$1"); shift ;;
    esac
done
[[ -d "$TREE" ]] || { echo "--tree: give a folder to back up" >&2; exit 2; }
[[ ${#MODES[@]} -gt 0 ]] || MODES=(auto fastest restic)
FLOE=${FLOE_BIN:-target/release/floe}
RESTIC=${RESTIC_BIN:-restic}
WORK=${BENCH_DIR:-$(mktemp -d)}/compression
mkdir -p "$WORK"
export FLOE_PASSWORD=bench RESTIC_PASSWORD=bench

warm_up() {
    sync
    if [[ -w /proc/sys/vm/drop_caches ]]; then echo 1 >/proc/sys/vm/drop_caches || true; fi
    find "$TREE" -type f -exec cat {} + >/dev/null 2>&1 || true
}

for round in $(seq "$RUNS"); do
    for mode in "${MODES[@]}"; do
        repo="$WORK/repo"
        rm -rf "$repo" "$WORK/cache"
        if [[ $mode == restic ]]; then
            "$RESTIC" init -q --repository-version 2 -r "$repo" --cache-dir "$WORK/cache"
            run=("$RESTIC" -r "$repo" --cache-dir "$WORK/cache" backup -q "$TREE")
        else
            "$FLOE" -r "$repo" init -q
            run=("$FLOE" -r "$repo" backup -q --compression "$mode" "$TREE")
        fi
        warm_up
        /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "${run[@]}"
        echo "$round $mode $(cat "$WORK/time") $(du -sb "$repo" | cut -f1)"
    done
done
