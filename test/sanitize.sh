#!/usr/bin/env bash
# AddressSanitizer/UBSan run: builds `make SANITIZE=1` from a copy of the tree (so the normal
# build's objects are never mixed with instrumented ones), installs it into a private copy of
# the PostgreSQL tree, starts a cluster with the ASan runtime preloaded into the postmaster and
# runs the regression and isolation suites. Fails on any failing test and on any sanitizer
# report. Prints "sanitize: N passed, N failed" last. Takes a few minutes on 2 cores.
#   test/sanitize.sh            (as root: the cluster runs as user postgres)
# ASan needs its runtime loaded first; PostgreSQL is not instrumented, so every server process
# must start with
#   LD_PRELOAD="$(readlink -f $(gcc -print-file-name=libasan.so)) asan_first.so"
#   ASAN_OPTIONS=detect_leaks=0:...
# The private tree's bin/postgres becomes a wrapper that sets exactly that and execs the real
# binary, so the postmaster, its backends and initdb's bootstrap run under ASan while initdb,
# pg_ctl and psql (which hang under a preloaded ASan, see test/lib/asan_first.c) do not.
# asan_first.so works around that hang for the server; detect_leaks=0 because the server
# frees memory contexts, not individual allocations, and its processes exit without freeing.
set -uo pipefail
src_root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/pg_eventstore_asan.XXXXXX")
chmod 755 "$work"
export ES_DESTDIR=$work/install
. "$src_root/test/lib/cluster.sh"

cleanup() {
  es_cluster_stop
  [ -z "${ES_KEEP_TMP:-}" ] && rm -rf "$work"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

libasan=$(readlink -f "$(gcc -print-file-name=libasan.so)")
if [ ! -f "$libasan" ]; then
  echo "sanitize: no ASan runtime (libasan) for gcc; apt-get install libasan8" >&2
  exit 1
fi

es_log "copying the tree and building with SANITIZE=1"
tar -C "$src_root" --exclude=./build --exclude=./.git --exclude='*.o' --exclude='*.so' \
  --exclude=./results --exclude=./test/isolation/results -cf - . | { mkdir "$work/src" && tar -C "$work/src" -xf -; }
build=$work/src
if ! make -C "$build" -s -j2 SANITIZE=1 >"$work/build.log" 2>&1; then
  cat "$work/build.log"; echo "sanitize: 0 passed, 1 failed"; exit 1
fi
gcc -O2 -shared -fPIC -o "$work/asan_first.so" "$src_root/test/lib/asan_first.c" -ldl ||
  { echo "sanitize: 0 passed, 1 failed"; exit 1; }
es_private_tree && make -C "$build" -s install DESTDIR="$ES_DESTDIR" >/dev/null ||
  { echo "sanitize: 0 passed, 1 failed"; exit 1; }

bin=$ES_DESTDIR/usr/lib/postgresql/$PG_MAJOR/bin
reports=$work/reports
mkdir -p "$reports"
[ "$(id -u)" -eq 0 ] && chown "${ES_PG_USER:-postgres}" "$reports" 2>/dev/null
chmod 777 "$reports"
asan_options="detect_leaks=0:log_path=$reports/asan:abort_on_error=0:print_summary=1"
asan_options+=":detect_stack_use_after_return=0:handle_segv=1:allow_user_segv_handler=1"
ubsan_options="print_stacktrace=1:log_path=$reports/ubsan:halt_on_error=0"

mv "$bin/postgres" "$bin/postgres.bin"
cat >"$bin/postgres" <<WRAPPER
#!/bin/sh
LD_PRELOAD="$libasan $work/asan_first.so" ASAN_OPTIONS="$asan_options" \\
  UBSAN_OPTIONS="$ubsan_options" exec "$bin/postgres.bin" "\$@"
WRAPPER
chmod 755 "$bin/postgres"

# Preloaded: the suites run through the shared-memory registration slots (src/pg/horizon.cpp),
# the newer path; the lock-table path is what the unpreloaded clusters of test/run exercise.
es_cluster_start "shared_preload_libraries = 'pg_eventstore'" ||
  { echo "sanitize: 0 passed, 1 failed"; exit 1; }
if ! grep -q "$(basename "$libasan")" "/proc/$(head -1 "$ES_PGDATA/postmaster.pid")/maps"; then
  echo "sanitize: the postmaster runs without the ASan runtime" >&2
  echo "sanitize: 0 passed, 1 failed"; exit 1
fi

if [ "$("$PG_BIN/psql" -X -At -d postgres -c 'SHOW shared_preload_libraries')" != pg_eventstore ]; then
  echo "sanitize: the library is not preloaded" >&2
  echo "sanitize: 0 passed, 1 failed"; exit 1
fi

es_log "regression and isolation suites under ASan/UBSan"
out=$(make -C "$build" -s installcheck 2>&1)
echo "$out" | grep -E '\.\.\. |tests passed|failed' | sed 's/^/  /'
ok=$(echo "$out" | grep -cE '\.\.\. ok' || true)
bad=$(echo "$out" | grep -cE '\.\.\. (FAILED|failed)' || true)
if [ "$ok" -eq 0 ] && [ "$bad" -eq 0 ]; then echo "$out" | tail -30; bad=1; fi
for diffs in "$build/regression.diffs" "$build/test/isolation/results/regression.diffs"; do
  [ -s "$diffs" ] && head -100 "$diffs"
done

# Reports: one file per reporting process, plus anything that reached the server log.
found=0
for f in "$reports"/*; do
  [ -s "$f" ] || continue
  found=$((found + 1))
  echo "--- sanitizer report $(basename "$f") ---"; head -60 "$f"
done
if grep -qE 'AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$ES_TMP/server.log"; then
  found=$((found + 1))
  echo "--- sanitizer output in the server log ---"
  grep -E -A20 'AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$ES_TMP/server.log" | head -60
fi
es_log "sanitizer reports: $found"
[ "$found" -gt 0 ] && bad=$((bad + 1))
echo "sanitize: $ok passed, $bad failed"
[ "$bad" -eq 0 ]
