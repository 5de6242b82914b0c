#!/usr/bin/env bash
# Browsing benchmark: find, diff and dump, floe vs restic, on the same repository history.
#
# Usage: benches/browse.sh [--scale S] [--snapshots N] [--runs N]
#
#   --scale S       dataset size factor (1.0 is about 1 GiB; default 0.5)
#   --snapshots N   snapshots in each repository (default 10)
#   --runs N        timed runs of each command (default 5; hyperfine, medians reported)
#
# Environment: BENCH_DIR (default <project>/bench-work/browse), FLOE_BIN (default
# <project>/target/release/floe), RESTIC_BIN (default restic from PATH).
#
# Both tools back up the generated dataset N times, with a few files appended to and one file
# added between backups, into local repositories. Then, timed with hyperfine:
#   find    a name pattern across every snapshot
#   diff    the first snapshot against the last
#   dump    the dataset's folder in the last snapshot, as a tar stream to /dev/null
# Results: a table on stdout and BENCH_DIR/results.json (hyperfine's JSON per command).

set -euo pipefail

SCALE=0.5
SNAPSHOTS=10
RUNS=5
while [[ $# -gt 0 ]]; do
    case "$1" in
        --scale) SCALE=${2:?}; shift 2 ;;
        --snapshots) SNAPSHOTS=${2:?}; shift 2 ;;
        --runs) RUNS=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=$(dirname "$SCRIPT_DIR")
BENCH_DIR=${BENCH_DIR:-$PROJECT_DIR/bench-work/browse}
FLOE=${FLOE_BIN:-$PROJECT_DIR/target/release/floe}
RESTIC=${RESTIC_BIN:-restic}
command -v hyperfine >/dev/null || { echo "hyperfine is needed (apt-get install hyperfine)" >&2; exit 1; }
[[ -x "$FLOE" ]] || { echo "no floe binary at $FLOE (cargo build --release)" >&2; exit 1; }

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
DATA=$BENCH_DIR/data
python3 "$SCRIPT_DIR/make_dataset.py" --scale "$SCALE" "$DATA" >/dev/null
echo "bench password" > "$BENCH_DIR/pw"
export FLOE_PASSWORD_FILE=$BENCH_DIR/pw RESTIC_PASSWORD_FILE=$BENCH_DIR/pw
FREPO=$BENCH_DIR/floe-repo
RREPO=$BENCH_DIR/restic-repo
"$FLOE" -r "$FREPO" init >/dev/null
"$RESTIC" -r "$RREPO" init >/dev/null

# Same history for both: back up, change a few files, repeat.
mapfile -t FILES < <(find "$DATA" -type f -name '*.txt' | sort | head -n 50)
for ((i = 1; i <= SNAPSHOTS; i++)); do
    "$FLOE" -r "$FREPO" backup "$DATA" >/dev/null
    "$RESTIC" -r "$RREPO" backup -q "$DATA" >/dev/null
    for f in "${FILES[@]:$((i * 5 % 50)):5}"; do echo "change $i" >>"$f"; done
    echo "new file $i" >"$DATA/added-$i.txt"
done

FIRST_F=$("$FLOE" -r "$FREPO" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
FIRST_R=$("$RESTIC" -r "$RREPO" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
# This restic's diff takes ids only.
LAST_R=$("$RESTIC" -r "$RREPO" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
# The whole backed-up folder: every kind of file the dataset has.
FOLDER=$DATA

run() {
    local name=$1 floe_cmd=$2 restic_cmd=$3
    hyperfine --style none --warmup 1 --runs "$RUNS" --export-json "$BENCH_DIR/$name.json" \
        -n "floe $name" "$floe_cmd" -n "restic $name" "$restic_cmd" >/dev/null
    python3 - "$BENCH_DIR/$name.json" "$name" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
f, s = r[0]["median"], r[1]["median"]
print(f"{sys.argv[2]:<6} floe {f:8.3f} s   restic {s:8.3f} s   ratio {s / f:5.2f}x")
EOF
}

echo "dataset: $(du -sh "$DATA" | cut -f1), $SNAPSHOTS snapshots, medians of $RUNS runs;" \
    "dump of $(du -sh "$FOLDER" | cut -f1) ($(find "$FOLDER" | wc -l) entries)"
run find "$FLOE -r $FREPO find '*.txt' >/dev/null 2>&1" \
    "$RESTIC -r $RREPO find '*.txt' >/dev/null 2>&1"
run diff "$FLOE -r $FREPO diff $FIRST_F latest >/dev/null" \
    "$RESTIC -r $RREPO diff $FIRST_R $LAST_R >/dev/null"
run dump "$FLOE -r $FREPO dump latest:$FOLDER >/dev/null" \
    "$RESTIC -r $RREPO dump latest $FOLDER >/dev/null"
python3 - "$BENCH_DIR" <<'EOF'
import json, os, sys
d = sys.argv[1]
out = {n: json.load(open(os.path.join(d, n + ".json"))) for n in ("find", "diff", "dump")}
json.dump(out, open(os.path.join(d, "results.json"), "w"), indent=1)
EOF
