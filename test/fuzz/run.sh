#!/usr/bin/env bash
# Builds the libFuzzer target over src/core (clang, -fsanitize=fuzzer,address,undefined) and
# runs it for N seconds (default 30) from the seed corpus in test/fuzz/corpus. New inputs go
# to a scratch corpus, crashes to build/fuzz/ (crash-*). Exits non-zero on any finding.
#   test/fuzz/run.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-30}
CXX=${FUZZ_CXX:-$(command -v clang++-14 || command -v clang++)}
out=build/fuzz
mkdir -p "$out/corpus"
rm -f "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-*
"$CXX" -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -fno-omit-frame-pointer -Wall -Wextra -Isrc/core \
  test/fuzz/fuzz_events.cpp src/core/*.cpp -o "$out/fuzz_events"
cp test/fuzz/corpus/* "$out/corpus/"
echo "fuzzing src/core event validation for ${seconds}s"
"$out/fuzz_events" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
  -dict=test/fuzz/events.dict -artifact_prefix="$out/" -print_final_stats=1 \
  "$out/corpus" 2>&1 | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|INFO: seed corpus)|ERROR|invariant|SUMMARY' || true
# libFuzzer's exit status is lost in the pipe: crashes leave artifacts behind.
if compgen -G "$out/crash-*" >/dev/null || compgen -G "$out/leak-*" >/dev/null ||
   compgen -G "$out/timeout-*" >/dev/null || compgen -G "$out/oom-*" >/dev/null; then
  echo "fuzz_events found a failure: $(ls "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* 2>/dev/null)"
  exit 1
fi
echo "fuzz_events: no findings"
