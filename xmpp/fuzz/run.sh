#!/usr/bin/env bash
# Builds the StreamParser fuzz target with clang in its own build directory
# and runs it for SECONDS seconds (default 60) from the committed seed corpus.
# Exits non-zero when the fuzzer finds a crash or a violated property; the
# reproducer is left in the build directory as crash-*.
#
# usage: xmpp/fuzz/run.sh [SECONDS]
# env:   FUZZ_BUILD_DIR (default: <repo>/build-fuzz), FUZZ_JOBS (default: 2)
set -euo pipefail

seconds="${1:-60}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
target=parley_fuzz_stream_parser

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja \
  -DFUZZ=ON -DPARLEY_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target "$target" -j "${FUZZ_JOBS:-2}"

# libFuzzer adds what it discovers to the first corpus directory: keep that a
# scratch copy so the committed seeds stay small.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cp "$here"/corpus/* "$scratch"/

"$build/xmpp/fuzz/$target" \
  -max_total_time="$seconds" \
  -max_len=8192 \
  -timeout=10 \
  -rss_limit_mb=2048 \
  -dict="$here/xmpp.dict" \
  -artifact_prefix="$build/" \
  -print_final_stats=1 \
  "$scratch" "$here/corpus"
