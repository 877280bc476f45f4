#!/usr/bin/env bash
# Outbox stress test (test/stress/outbox.cpp): builds the libpq client and runs it against the
# cluster in PGHOST/PGPORT/PGUSER/PGDATABASE. Bounded to about a minute.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build/stress
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target outbox -j2 >/dev/null
exec timeout 120 "$build/outbox"
