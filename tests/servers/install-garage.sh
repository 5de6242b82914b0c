#!/usr/bin/env bash
# Installs the Garage object store used by the S3 tests into a cache folder.
# Idempotent: returns at once when the pinned version is already there.
# Prints the path of the garage binary on stdout.
set -euo pipefail

GARAGE_VERSION="${GARAGE_VERSION:-2.5.0}"
CACHE="${FLOE_TEST_CACHE:-$HOME/.cache/floe-test}"
ROOT="$CACHE/garage-$GARAGE_VERSION"
BIN="$ROOT/bin/garage"

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -qF "$GARAGE_VERSION"; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$ROOT"
echo "installing garage $GARAGE_VERSION into $ROOT (about 10 minutes on 2 cores)" >&2
# Metrics and K2V are not needed by the tests; leaving them out shortens the build.
# The build folder stays in the cache so that an interrupted install resumes.
CARGO_TARGET_DIR="$CACHE/garage-build" cargo install garage \
    --version "=$GARAGE_VERSION" --locked \
    --no-default-features --features bundled-libs,lmdb \
    --root "$ROOT" >&2
"$BIN" --version >&2
echo "$BIN"
