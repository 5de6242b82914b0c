#!/usr/bin/env bash
# Runs a command (the test suite) with the servers of the tests up (the S3 servers, and a
# PostgreSQL server for the database dump test):
#
#   tests/servers/with-s3-servers.sh cargo test --workspace --all-features
#
# Installs Garage and moto on first use (into $FLOE_TEST_CACHE, ~/.cache/floe-test by default;
# Garage takes about 10 minutes to build on 2 cores, later runs reuse it), starts a 3-node Garage
# cluster and a moto server on 127.0.0.1, exports where they are, runs the command and stops the
# servers. PostgreSQL comes from Debian's package (installed when missing). A server that cannot
# start fails the run. Under it, the server tests run rather than skip (FLOE_TEST_REQUIRE_S3=1,
# FLOE_TEST_REQUIRE_PG=1).
set -euo pipefail
. "$(dirname "$0")/common.sh"

cleanup() {
    "$SERVERS_DIR/garage.sh" stop >/dev/null 2>&1 || true
    "$SERVERS_DIR/moto.sh" stop >/dev/null 2>&1 || true
    "$SERVERS_DIR/postgres.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$SERVERS_DIR/garage.sh" start
"$SERVERS_DIR/moto.sh" start
"$SERVERS_DIR/postgres.sh" start
. "$FLOE_TEST_SERVERS/garage/env"
. "$FLOE_TEST_SERVERS/moto/env"
. "$FLOE_TEST_SERVERS/postgres/env"
export FLOE_TEST_REQUIRE_S3=1 FLOE_TEST_REQUIRE_PG=1
# Credentials reach floe the standard way, through the AWS environment variables. moto accepts
# any, so Garage's key serves both; no instance metadata lookups on a test machine.
export AWS_ACCESS_KEY_ID="$FLOE_TEST_GARAGE_KEY_ID"
export AWS_SECRET_ACCESS_KEY="$FLOE_TEST_GARAGE_SECRET"
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION
"$@"
