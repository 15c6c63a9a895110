#!/usr/bin/env bash
# Side-by-side benchmark of Parley, ejabberd and Prosody on this machine.
#
#   bench/compare.sh                    # everything, writes docs/performance.md and docs/performance-*.png
#   SERVERS="parley" bench/compare.sh   # a subset
#   QUICK=1 bench/compare.sh            # small numbers, one run each: checks the script, not the servers
#   SKIP_BUILD=1 bench/compare.sh       # use the binaries already in build/release
#
# Installs what is missing (ejabberd, prosody, gnuplot-nox), builds Parley
# (Release, build/release like ./run.sh) and parley-bench, then runs each
# server alone on 127.0.0.1 with its own config (bench/configs/), pinned to
# core 0 while parley-bench runs on core 1, and stops it by PID. Every
# scenario runs RUNS times (median and min–max reported). Sized to finish in
# under 30 minutes on 2 cores; the sizes below are the knobs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

SERVERS=${SERVERS:-"parley ejabberd prosody"}
RUNS=${RUNS:-3}
PORT=${PORT:-35222}
# Idle sessions: Parley goes on to 19,000, just under the open-file limit
# of 20,000 that this container's hard limit imposes on both processes.
HOLD_CHECKPOINTS=${HOLD_CHECKPOINTS:-"1000,10000"}
HOLD_CHECKPOINTS_parley=${HOLD_CHECKPOINTS_parley:-"1000,10000,19000"}
LOGIN_SESSIONS=${LOGIN_SESSIONS:-1000}
CHAT_PAIRS=${CHAT_PAIRS:-1000}
CHAT_SECONDS=${CHAT_SECONDS:-4}
COMMON_RATE=${COMMON_RATE:-5000}
SWEEP_RATES=${SWEEP_RATES:-"1000 5000 20000 50000"}
SWEEP_PAIRS=${SWEEP_PAIRS:-200}
SWEEP_SECONDS=${SWEEP_SECONDS:-4}
PRESENCE_USERS=${PRESENCE_USERS:-420}
if [[ -n "${QUICK:-}" ]]; then
  RUNS=1 HOLD_CHECKPOINTS="100,300" HOLD_CHECKPOINTS_parley="100,300" LOGIN_SESSIONS=100 CHAT_PAIRS=20 CHAT_SECONDS=2
  COMMON_RATE=500 SWEEP_RATES="200 1000" SWEEP_PAIRS=10 SWEEP_SECONDS=2 PRESENCE_USERS=42
fi
PASSWORD=bench-password
SERVER_CORE=0
# parley-bench runs on every other core; the flat-out chat runs start one
# generator process per such core (CHAT_PROCESSES), each with its share of
# the pairs, so that on a larger machine the generator is not what limits
# them. On 2 cores that is one process: see docs/performance.md.
BENCH_CORES=${BENCH_CORES:-$(seq -s, 1 $(($(nproc) - 1)))}
BENCH_CORES=${BENCH_CORES:-0}
CHAT_PROCESSES=${CHAT_PROCESSES:-$(tr ',' '\n' <<<"$BENCH_CORES" | wc -l)}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# --- setup ----------------------------------------------------------------------

install_missing() {
  local wanted=()
  command -v ejabberdctl >/dev/null || wanted+=(ejabberd)
  command -v prosody >/dev/null || wanted+=(prosody)
  command -v gnuplot >/dev/null || wanted+=(gnuplot-nox)
  command -v taskset >/dev/null || wanted+=(util-linux)
  command -v ss >/dev/null || wanted+=(iproute2)
  if ((${#wanted[@]})); then
    log "installing ${wanted[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${wanted[@]}" >/dev/null
  fi
  # The packages start system-wide services on every interface; the benchmark
  # runs its own instances instead.
  local service
  for service in ejabberd prosody; do
    if command -v systemctl >/dev/null && systemctl is-enabled "$service" >/dev/null 2>&1; then
      systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
    if [[ -x /etc/init.d/$service ]]; then
      /etc/init.d/$service stop >/dev/null 2>&1 || true
      update-rc.d "$service" disable >/dev/null 2>&1 || true
    fi
  done
}

build() {
  log "building Parley (Release) and parley-bench in build/release"
  cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DPARLEY_TESTS=OFF >/dev/null
  cmake --build build/release --target parleyd parleyctl parley-bench -j2 >/dev/null
}

make_certificate() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" \
    -keyout "$1/localhost.key" -out "$1/localhost.crt" 2>/dev/null
}

fill() {  # fill TEMPLATE OUTPUT: replaces @WORK@, @PORT@, @DIST_PORT@
  sed -e "s|@WORK@|$work_dir|g" -e "s|@PORT@|$PORT|g" -e "s|@DIST_PORT@|$((PORT + 1))|g" "$1" >"$2"
}

# The process that listens on the c2s port: the one whose memory and CPU are
# measured (for ejabberd the beam.smp of the node, whatever wrapper started it).
listener_pid() {
  ss -Hltnp "sport = :$PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2
}

wait_for_port() {
  local deadline=$((SECONDS + 120))
  until (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
    if ((SECONDS > deadline)); then
      log "server did not open port $PORT"
      return 1
    fi
    if [[ -n "${server_pid:-}" ]] && ! kill -0 "$server_pid" 2>/dev/null; then
      log "server exited"
      return 1
    fi
    sleep 0.2
  done
  local listener
  listener=$(listener_pid)
  if [[ -n "$listener" && "$listener" != "$server_pid" ]]; then
    server_pid=$listener
    [[ " $stop_pids " == *" $listener "* ]] || stop_pids="$listener $stop_pids"
  fi
}

# --- servers: each sets server_pid (the process measured) and stop_pids -----------

start_parley() {
  fill bench/configs/parley.yml.in "$work_dir/parley.yml"
  taskset -c "$SERVER_CORE" build/release/server/parleyd --config "$work_dir/parley.yml" \
    >"$work_dir/server.log" 2>&1 &
  server_pid=$!
  stop_pids=$server_pid
}

start_prosody() {
  mkdir -p "$work_dir/data" "$work_dir/certs"
  fill bench/configs/prosody.cfg.lua.in "$work_dir/prosody.cfg.lua"
  taskset -c "$SERVER_CORE" prosody -F --config "$work_dir/prosody.cfg.lua" >"$work_dir/server.log" 2>&1 &
  server_pid=$!
  stop_pids=$server_pid
}

# Debian's ejabberd 23.01 runs as an unprivileged foreground node with its own
# config: ejabberdctl --config-dir/--config/--ctl-config/--spool/--logs/--node
# ... foreground, as the ejabberd user (the work directory is handed to it).
# setpriv, not ejabberdctl's own su: su goes through PAM, which resets the
# open-file limit to 1024 and the node dies at about 1,000 connections. The
# Erlang distribution port is fixed on loopback (ERL_DIST_PORT, no epmd).
start_ejabberd() {
  fill bench/configs/ejabberd.yml.in "$work_dir/ejabberd.yml"
  fill bench/configs/ejabberdctl.cfg.in "$work_dir/ejabberdctl.cfg"
  cp /etc/ejabberd/inetrc "$work_dir/inetrc"
  mkdir -p "$work_dir/spool" "$work_dir/logs"
  chown -R ejabberd:ejabberd "$work_dir"
  HOME="$work_dir/spool" taskset -c "$SERVER_CORE" \
    setpriv --reuid=ejabberd --regid=ejabberd --init-groups ejabberdctl --config-dir "$work_dir" --config "$work_dir/ejabberd.yml" \
    --ctl-config "$work_dir/ejabberdctl.cfg" --spool "$work_dir/spool" --logs "$work_dir/logs" \
    --node "parleybench@localhost" foreground >"$work_dir/server.log" 2>&1 &
  # wait_for_port replaces this with the beam.smp that listens on the port
  # (by PID from ss): looking the node up by name found a process of the
  # previous node after a restart, whose RSS was 1 MiB.
  server_pid=$!
  stop_pids=$server_pid
}

stop_server() {
  local pid
  for pid in $stop_pids; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $stop_pids; do
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  stop_pids=
  server_pid=
}

# --- running the generator -----------------------------------------------------------

# bench SERVER CASE RUN ARGS...: one parley-bench run, its JSON line saved.
bench() {
  local server=$1 case_name=$2 run=$3
  shift 3
  local output
  output=$(taskset -c "$BENCH_CORES" build/release/bench/parley-bench "$@" --port "$PORT" \
    --domain localhost --password "$PASSWORD" --server-pid "$server_pid" --label "$server/$case_name/$run" \
    --timeout 600 2>&1) || true
  printf '%s\n' "$output" | grep -v '^{' >&2 || true
  local json
  json=$(printf '%s\n' "$output" | grep '^{' | tail -1)
  [[ -n "$json" ]] || json='{"error":"no summary"}'
  printf '{"server":"%s","case":"%s","run":%s,"result":%s}\n' "$server" "$case_name" "$run" "$json" >>"$results"
}

# bench_parallel SERVER CASE RUN PAIRS ARGS...: CHAT_PROCESSES chat generators
# at once, each with its share of the pairs and its own users, merged into
# one result: rates and counts summed, latency percentiles the worst of the
# processes, server CPU the largest of their (overlapping) windows.
bench_parallel() {
  local server=$1 case_name=$2 run=$3 pairs=$4
  shift 4
  local processes=$CHAT_PROCESSES
  ((processes <= pairs)) || processes=$pairs
  if ((processes <= 1)); then
    bench "$server" "$case_name" "$run" chat --pairs "$pairs" "$@"
    return
  fi
  local parts=() generators=() i share first=1 remaining=$pairs
  for ((i = 0; i < processes; i++)); do
    share=$((remaining / (processes - i)))
    parts+=("$(mktemp)")
    taskset -c "$BENCH_CORES" build/release/bench/parley-bench chat --pairs "$share" --first-user "$first" "$@" \
      --port "$PORT" --domain localhost --password "$PASSWORD" --server-pid "$server_pid" \
      --label "$server/$case_name/$run/$i" --timeout 600 >"${parts[i]}" 2>&1 &
    generators+=($!)
    first=$((first + 2 * share))
    remaining=$((remaining - share))
  done
  wait "${generators[@]}" || true
  grep -hv '^{' "${parts[@]}" >&2 || true
  local merged
  merged=$(grep -h '^{' "${parts[@]}" | /usr/bin/python3 -c '
import json, sys
parts = [json.loads(line) for line in sys.stdin if line.strip()]
if not parts:
    print(json.dumps({"error": "no summary"}))
    sys.exit()
merged = dict(parts[0])
for key in ("pairs", "messages_per_second", "sent", "delivered", "lost", "duplicated", "unknown", "reordered",
            "stanza_errors", "failures"):
    if any(key in p for p in parts):
        merged[key] = sum(p.get(key, 0) for p in parts)
for key in ("latency_us_p50", "latency_us_p95", "latency_us_p99", "latency_us_max", "server_cpu_seconds", "seconds"):
    if any(key in p for p in parts):
        merged[key] = max(p.get(key, 0) for p in parts)
merged["processes"] = len(parts)
print(json.dumps(merged))')
  rm -f "${parts[@]}"
  printf '{"server":"%s","case":"%s","run":%s,"result":%s}\n' "$server" "$case_name" "$run" "$merged" >>"$results"
}

suite() {
  local server=$1 run rate
  local checkpoints_name="HOLD_CHECKPOINTS_$server"
  local checkpoints=${!checkpoints_name:-$HOLD_CHECKPOINTS}
  local max_hold=${checkpoints##*,}
  log "$server: registering $max_hold users and $PRESENCE_USERS presence users"
  bench "$server" register 1 register --sessions "$max_hold" --concurrency 50
  bench "$server" register-presence 1 register --sessions "$PRESENCE_USERS" --user-prefix pres --concurrency 50
  log "$server: presence roster setup"
  bench "$server" presence-setup 1 presence --sessions "$PRESENCE_USERS" --user-prefix pres --duration 300
  for ((run = 1; run <= RUNS; run++)); do
    log "$server: run $run"
    bench "$server" login-tcp "$run" login --sessions "$LOGIN_SESSIONS" --concurrency 100
    bench "$server" login-starttls "$run" login --sessions "$LOGIN_SESSIONS" --concurrency 100 --tls starttls
    bench_parallel "$server" chat-tcp "$run" "$CHAT_PAIRS" --duration "$CHAT_SECONDS" --concurrency 100
    bench_parallel "$server" chat-starttls "$run" "$CHAT_PAIRS" --duration "$CHAT_SECONDS" --concurrency 100 \
      --tls starttls
    bench "$server" chat-common-rate "$run" chat --pairs "$CHAT_PAIRS" --duration "$CHAT_SECONDS" \
      --concurrency 100 --rate "$COMMON_RATE"
    bench "$server" presence "$run" presence --sessions "$PRESENCE_USERS" --user-prefix pres --skip-setup \
      --duration 120
  done
  log "$server: latency against offered rate"
  for rate in $SWEEP_RATES; do
    bench "$server" "sweep-$rate" 1 chat --pairs "$SWEEP_PAIRS" --duration "$SWEEP_SECONDS" --rate "$rate"
  done
  # Memory per session is measured on a fresh process: after the chat runs
  # the allocator keeps freed memory, which new sessions would reuse.
  log "$server: restarting for the idle sessions (up to ${max_hold})"
  stop_server
  "start_$server"
  wait_for_port
  bench "$server" hold-starttls 1 hold --tls starttls --checkpoints "$checkpoints" --concurrency 200 \
    --sources 4 --settle 3
}

# --- main ----------------------------------------------------------------------------

install_missing
[[ -n "${SKIP_BUILD:-}" ]] || build
ulimit -n "$(ulimit -Hn)"

results_dir=$root/build/release/bench-results
mkdir -p "$results_dir"
results=$results_dir/results-$(date +%Y%m%d-%H%M%S).jsonl
: >"$results"
stop_pids=
server_pid=
work_dir=
trap 'stop_server; [[ -n "$work_dir" ]] && rm -rf "$work_dir"' EXIT

started=$SECONDS
for server in $SERVERS; do
  work_dir=$(mktemp -d "/tmp/parley-bench-$server.XXXXXX")
  chmod 755 "$work_dir"
  make_certificate "$work_dir"
  log "$server: starting"
  "start_$server"
  wait_for_port
  suite "$server"
  log "$server: stopping"
  stop_server
  rm -rf "$work_dir"
  work_dir=
done
log "benchmarks took $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s"

# REPORT_WITH: earlier results files to merge (a server measured again here
# replaces its earlier results).
/usr/bin/python3 bench/report.py --results ${REPORT_WITH:-} "$results" --doc docs/performance.md --plots docs \
  --limits "fds=$(ulimit -Hn)" --elapsed "$((SECONDS - started))" --quick "${QUICK:-}"
log "wrote docs/performance.md (raw results: $results)"
