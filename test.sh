#!/usr/bin/env bash
# Installs what is missing, builds the test configuration (-Werror, ASan +
# UBSan, debug info) and runs every unit, end-to-end and fuzz test.
set -euo pipefail
cd "$(dirname "$0")"

scripts/install-deps.sh test
jobs=$(nproc)

# The XML stream parser's libFuzzer target needs clang; it is built on its own.
cmake -S . -B build/fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFUZZ=ON -DPARLEY_TESTS=OFF >/dev/null
cmake --build build/fuzz --target parley_fuzz_stream_parser

# Unoptimised: g++ 12's flow-based warnings (maybe-uninitialized in
# std::regex, mismatched-new-delete in Asio) misfire at -O1 under -Werror.
cmake -S . -B build/test -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DPARLEY_WERROR=ON -DPARLEY_SANITIZE=ON \
  -DPARLEY_FUZZER="$PWD/build/fuzz/xmpp/fuzz/parley_fuzz_stream_parser" >/dev/null
cmake --build build/test -j"$jobs"

cd build/test
ctest --output-on-failure -j"$jobs" --timeout 300
