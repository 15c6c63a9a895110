#!/usr/bin/env bash
# Memory per idle authenticated STARTTLS session in parleyd, without the
# rest of compare.sh: registers the users, restarts parleyd (a fresh
# process, so the allocator holds nothing from the registrations), then
# holds the sessions and prints the server's RSS growth per session at each
# checkpoint. Depends far less on the machine's load than throughput does.
#
#   bench/session_memory.sh [CHECKPOINTS]     (default 1000,4000)
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKPOINTS=${1:-1000,4000}
PORT=${PORT:-35422}
TLS=${TLS:-starttls}

if [[ -z "${SKIP_BUILD:-}" ]]; then
  cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DPARLEY_TESTS=OFF >/dev/null
  cmake --build build/release --target parleyd parley-bench -j2 >/dev/null
fi
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d /tmp/parley-memory.XXXXXX)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" \
  -keyout "$work/localhost.key" -out "$work/localhost.crt" 2>/dev/null
sed -e "s|@WORK@|$work|g" -e "s|@PORT@|$PORT|g" bench/configs/parley.yml.in >"$work/parley.yml"

pid=
start() {
  build/release/server/parleyd --config "$work/parley.yml" >>"$work/parleyd.log" 2>&1 &
  pid=$!
  local deadline=$((SECONDS + 60))
  until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
    ((SECONDS < deadline)) && kill -0 "$pid" 2>/dev/null || { cat "$work/parleyd.log" >&2; exit 1; }
    sleep 0.1
  done
}
stop() {
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}
trap 'stop; rm -rf "$work"' EXIT

bench=(build/release/bench/parley-bench --port "$PORT" --domain localhost --password memory-pw --timeout 600)
start
"${bench[@]}" register --sessions "${CHECKPOINTS##*,}" --concurrency 50 >/dev/null
stop
start
"${bench[@]}" hold --tls "$TLS" --checkpoints "$CHECKPOINTS" --concurrency 200 --sources 4 --settle 3 \
  --server-pid "$pid" | grep -v '^{'
