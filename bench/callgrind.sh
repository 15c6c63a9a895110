#!/usr/bin/env bash
# A stable counter that does not depend on a noisy machine: instructions
# executed by parleyd per routed chat message, counted by callgrind.
#
#   bench/callgrind.sh [MESSAGES]     (default 10000)
#
# Runs the Release parleyd (build/release) under valgrind --tool=callgrind
# with instrumentation off, logs in 10 pairs with parley-bench over plain
# TCP, switches instrumentation on once everyone is logged in
# (callgrind_control -i on), sends exactly MESSAGES chat messages (window 8
# per sender), dumps the counters and prints total Ir / MESSAGES plus the
# functions with the most instructions of their own. The raw profile
# stays in build/release/callgrind/ for callgrind_annotate or kcachegrind.
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${1:-10000}
PAIRS=10
PORT=${PORT:-35322}

command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
if [[ -z "${SKIP_BUILD:-}" ]]; then
  cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DPARLEY_TESTS=OFF >/dev/null
  cmake --build build/release --target parleyd parley-bench -j2 >/dev/null
fi

out=build/release/callgrind
rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d /tmp/parley-callgrind.XXXXXX)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" \
  -keyout "$work/localhost.key" -out "$work/localhost.crt" 2>/dev/null
sed -e "s|@WORK@|$work|g" -e "s|@PORT@|$PORT|g" bench/configs/parley.yml.in >"$work/parley.yml"

valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/callgrind.out.%p" \
  build/release/server/parleyd --config "$work/parley.yml" >"$out/parleyd.log" 2>&1 &
pid=$!
cleanup() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

deadline=$((SECONDS + 180))
until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
  ((SECONDS < deadline)) || { echo "parleyd did not start under valgrind" >&2; cat "$out/parleyd.log" >&2; exit 1; }
  kill -0 "$pid" 2>/dev/null || { cat "$out/parleyd.log" >&2; exit 1; }
  sleep 0.5
done

bench=(build/release/bench/parley-bench --port "$PORT" --domain localhost --password callgrind-pw --timeout 900)
"${bench[@]}" register --sessions $((PAIRS * 2)) --concurrency 4 >/dev/null
"${bench[@]}" chat --pairs "$PAIRS" --messages "$MESSAGES" --duration 900 --concurrency 4 \
  --after-login "callgrind_control -i on $pid >/dev/null" | tee "$out/chat.txt"
callgrind_control -d "$pid" >/dev/null
dump=$(ls -t "$out"/callgrind.out.*.* 2>/dev/null | head -1)
[[ -n "$dump" ]] || { echo "no callgrind dump" >&2; exit 1; }
delivered=$(grep -o '"delivered":[0-9]*' "$out/chat.txt" | cut -d: -f2)
total=$(grep -E '^(summary|totals):' "$dump" | head -1 | awk '{print $2}')
echo
echo "callgrind: $total instructions in parleyd for $delivered delivered messages"
echo "Ir per routed message: $((total / delivered))"
echo
callgrind_annotate --inclusive=no "$dump" 2>/dev/null | sed -n '1,45p' | cut -c1-160 >"$out/top-self.txt"
callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | sed -n '1,45p' | cut -c1-160 >"$out/top-inclusive.txt"
cat "$out/top-self.txt"
echo "profile: $dump (inclusive view: $out/top-inclusive.txt)"
