#!/usr/bin/env bash
# Stress test of the commit-safe global order: builds test/stress/global_order.cpp with CMake
# (build/stress) and runs it against the running cluster named by PGHOST, PGPORT, PGUSER and
# PGDATABASE (test/run sets them). Extra arguments go to the binary (e.g. --seconds 10,
# --naive). Prints the reconciled counts; exits non-zero on any mismatch.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD="$ROOT/build/stress"
mkdir -p "$BUILD"
if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
       cmake --build "$BUILD" --target global_order -j2; } >"$BUILD/build.log" 2>&1; then
  tail -40 "$BUILD/build.log"
  echo "global_order: build failed" >&2
  exit 1
fi
exec "$BUILD/global_order" "$@"
