#!/usr/bin/env bash
# Fuzzing smoke run: builds the fuzz targets of fuzz/ once and runs each for a bounded time from
# its committed corpus, failing on the first crash, hang or out-of-memory (docs/fuzzing.md).
# Needs rustup; installs the nightly toolchain and cargo-fuzz when they are missing.
#
#   .ci/fuzz.sh              every target, FUZZ_SECONDS (30) each
#   .ci/fuzz.sh tree pack    only these targets
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export CARGO_TERM_COLOR=never
seconds="${FUZZ_SECONDS:-30}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cargo +nightly fuzz build
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Runs write new inputs to a scratch copy, so the committed corpus stays as it is.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    echo "fuzz: $t for ${seconds}s"
    if ! cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$scratch/$t.log" 2>&1; then
        tail -n 60 "$scratch/$t.log"
        echo "fuzz: $t failed; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$scratch/$t.log" || true
done
echo "fuzz: ${#targets[@]} targets ran clean"
