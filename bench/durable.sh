#!/usr/bin/env bash
# Durable writes and restart, side by side with Redis, same machine, same run:
#   1. SET throughput, -c 50, -P 1 and -P 16: tandem restartable=true (every write
#      fsynced in its group commit before the reply) vs redis-server --appendonly yes
#      --appendfsync always.
#   2. Restart: load KEYS keys × 100 B, snapshot (tandem SAVE / redis SAVE), kill -9,
#      restart, time until the data answers; MB/s = snapshot or RDB bytes / load time.
#
#   bash bench/durable.sh                      # KEYS=3000000 REQUESTS=200000
#   TANDEM_BIN=/path/to/tandem RESTART=0 bash bench/durable.sh   # another build; throughput only
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-200000}
KEYS=${KEYS:-3000000}
REDIS_PORT=${REDIS_PORT:-6392}
TANDEM_PORT=${TANDEM_PORT:-9612}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
bin=${TANDEM_BIN:-}
[ -n "$bin" ] || { cargo build --release --quiet; bin="${CARGO_TARGET_DIR:-$PWD/target}/release/tandem"; }

work=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cat >"$work/tandem.toml" <<TOML
[cluster]
name = "bench"

[[stripe]]
name = "A"

[[stripe.server]]
name = "server1"
host = "127.0.0.1"
client-port = $TANDEM_PORT
group-port = $((TANDEM_PORT + 20))
management-port = $((TANDEM_PORT + 30))
data = "$work/tandem-data"
data-storage = "16gb"
restartable = true
TOML

start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --appendonly yes --appendfsync always --save "" \
    --dir "$work" --dbfilename dump.rdb --daemonize no >>"$work/redis.log" 2>&1 &
  pids+=($!); REDIS_PID=$!
}
start_tandem() {
  RUST_LOG=warn "$bin" server --config "$work/tandem.toml" --name server1 >>"$work/tandem.log" 2>&1 &
  pids+=($!); TANDEM_PID=$!
}
wait_pong() { # port: until PING answers PONG (Redis answers -LOADING while loading)
  for _ in $(seq 1 20000); do [ "$(redis-cli -p "$1" ping 2>/dev/null)" = "PONG" ] && return 0; sleep 0.01; done
  echo "port $1 never answered" >&2; exit 1
}
rps() {
  redis-benchmark -p "$1" -c 50 -n "$REQUESTS" -P "$2" -t set -r 100000 -q --csv 2>/dev/null \
    | awk -F'","' '$1 !~ /test/ {gsub(/"/,"",$2); print $2; exit}'
}

for port in "$REDIS_PORT" "$TANDEM_PORT"; do
  if redis-cli -p "$port" ping >/dev/null 2>&1; then echo "port $port is already in use: stop that server first" >&2; exit 1; fi
done
start_redis; start_tandem; wait_pong "$REDIS_PORT"; wait_pong "$TANDEM_PORT"
echo "| durable SET | redis (appendfsync always) rps | tandem (restartable) rps | tandem/redis |"
echo "|---|---|---|---|"
for p in 1 16; do
  r=$(rps "$REDIS_PORT" "$p"); m=$(rps "$TANDEM_PORT" "$p")
  echo "| -c 50 -P $p | $r | $m | $(python3 -c "print(f'{float($m)/float($r):.2f}')") |"
done
[ "${RESTART:-1}" = 0 ] && exit 0

# Restart: the same data in both, snapshotted, then kill -9 and restart.
redis-cli -p "$REDIS_PORT" flushall >/dev/null; redis-cli -p "$TANDEM_PORT" flushall >/dev/null
python3 bench/load.py "$KEYS" >"$work/load.resp"
redis-cli -p "$REDIS_PORT" --pipe <"$work/load.resp" >/dev/null
redis-cli -p "$TANDEM_PORT" --pipe <"$work/load.resp" >/dev/null
redis-cli -p "$REDIS_PORT" config set appendonly no >/dev/null   # restart from the RDB alone
redis-cli -p "$REDIS_PORT" save >/dev/null
redis-cli -p "$TANDEM_PORT" save >/dev/null
rdb_bytes=$(stat -c %s "$work/dump.rdb")
snap_bytes=$(du -cb "$work"/tandem-data/snapshots/*.snap | tail -1 | cut -f1)
kill -9 "$REDIS_PID" "$TANDEM_PID"; wait "$REDIS_PID" "$TANDEM_PID" 2>/dev/null || true
# Timed in this shell (not in $(...) subshells), so the restarted servers' pids are
# recorded and the EXIT trap stops them.
elapsed() { python3 -c "import time; print(f'{time.time() - $1:.3f}')"; }
t0=$(date +%s.%N)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --appendonly no --save "" --dir "$work" --dbfilename dump.rdb >>"$work/redis.log" 2>&1 &
pids+=($!)
wait_pong "$REDIS_PORT"; rt=$(elapsed "$t0")
t0=$(date +%s.%N)
start_tandem
wait_pong "$TANDEM_PORT"; tt=$(elapsed "$t0")
rk=$(redis-cli -p "$REDIS_PORT" dbsize); tk=$(redis-cli -p "$TANDEM_PORT" dbsize)
echo
echo "| restart after kill -9, $KEYS keys × 100 B | redis (RDB) | tandem (snapshot + log) | tandem/redis |"
echo "|---|---|---|---|"
echo "| keys after restart | $rk | $tk | |"
echo "| file loaded (MB) | $((rdb_bytes / 1048576)) | $((snap_bytes / 1048576)) | |"
echo "| time to first PONG (s) | $rt | $tt | $(python3 -c "print(f'{$tt/$rt:.2f}')") |"
echo "| load rate (MB/s of file) | $(python3 -c "print(f'{$rdb_bytes/1048576/$rt:.0f}')") | $(python3 -c "print(f'{$snap_bytes/1048576/$tt:.0f}')") | |"
