#!/usr/bin/env bash
# Store notifications end to end (test/stress/notify.cpp): builds the libpq client and runs it
# against the cluster in PGHOST/PGPORT/PGUSER/PGDATABASE. About 15 seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build/stress
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target notify -j2 >/dev/null
exec timeout 120 "$build/notify"
