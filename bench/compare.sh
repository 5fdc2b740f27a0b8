#!/usr/bin/env bash
# Side-by-side throughput and memory: tandem (development topology) vs redis-server
# (no persistence), same machine, same run, same redis-benchmark.
#
#   bash bench/compare.sh            # full run (about 3 minutes)
#   REQUESTS=100000 bash bench/compare.sh
#
# Prints a markdown table with requests/s and the ratio tandem/redis per row (the
# redis-benchmark tests, then XADD, BITCOUNT and PFADD), then RSS and used_memory after
# loading 1,000,000 keys of 100-byte values, and (fresh servers each) 1,000,000 small
# hashes of 10 fields, 1,000,000 small sets of 10 members, 1,000,000 sets of 10
# integers, 1,000,000 small sorted sets and lists of 10 members, and 1,000,000 keys of
# 100-byte values with a TTL (SMALL=0 leaves them out; SMALL_KINDS="sets intsets" picks
# some). THROUGHPUT=0
# skips the throughput rows and the 100-byte keys (the small containers alone).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-300000}
KEYS=${KEYS:-1000000}
REDIS_PORT=${REDIS_PORT:-6391}
TANDEM_PORT=${TANDEM_PORT:-9611}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
cargo build --release --quiet
TANDEM_BIN=${TANDEM_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/tandem}

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --daemonize no >"$work/redis.log" 2>&1 &
  pids+=($!); REDIS_PID=$!
}
start_tandem() {
  (cd "$work" && RUST_LOG=warn exec "$TANDEM_BIN" server --port "$TANDEM_PORT") >"$work/tandem.log" 2>&1 &
  pids+=($!); TANDEM_PID=$!
}
wait_ready() {
  for _ in $(seq 1 200); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "server on port $1 did not start" >&2; exit 1
}
rps() { # port test pipeline: the row of that test (LRANGE_100 runs an LPUSH first)
  redis-benchmark -p "$1" -c 50 -n "$REQUESTS" -P "$3" -t "$2" -r 100000 -q --csv 2>/dev/null \
    | awk -F'","' -v want="${2^^}" '{gsub(/"/,"",$1); gsub(/"/,"",$2); if (toupper($1) ~ "^" want) {print $2; exit}}'
}

rps_cmd() { # port pipeline command args…: requests/s of one custom command
  local port=$1 pipeline=$2; shift 2
  redis-benchmark -p "$port" -c 50 -n "$REQUESTS" -P "$pipeline" -r 100000 -q --csv "$@" 2>/dev/null \
    | awk -F'","' '{gsub(/"/,"",$2); if ($2 ~ /^[0-9.]+$/) {print $2; exit}}'
}

start_redis; start_tandem
wait_ready "$REDIS_PORT"; wait_ready "$TANDEM_PORT"

rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }
used() { redis-cli -p "$1" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r'; }
memory_table() { # title: keys, RSS and used_memory of both servers now
  local rk tk rr tr_ ru tu
  rk=$(redis-cli -p "$REDIS_PORT" dbsize); tk=$(redis-cli -p "$TANDEM_PORT" dbsize)
  rr=$(rss "$REDIS_PID"); tr_=$(rss "$TANDEM_PID"); ru=$(used "$REDIS_PORT"); tu=$(used "$TANDEM_PORT")
  echo
  echo "| $1 | redis | tandem | tandem/redis |"
  echo "|---|---|---|---|"
  echo "| keys | $rk | $tk | |"
  echo "| RSS (MB) | $((rr / 1048576)) | $((tr_ / 1048576)) | $(python3 -c "print(f'{$tr_/$rr:.2f}')") |"
  echo "| used_memory (MB) | $((ru / 1048576)) | $((tu / 1048576)) | $(python3 -c "print(f'{$tu/$ru:.2f}')") |"
}
if [ "${THROUGHPUT:-1}" = 1 ]; then
echo "| test | pipeline | redis rps | tandem rps | tandem/redis |"
echo "|---|---|---|---|---|"
for p in 1 16; do
  for t in set get incr lpush hset sadd zadd lrange_100; do
    r=$(rps "$REDIS_PORT" "$t" "$p"); m=$(rps "$TANDEM_PORT" "$t" "$p")
    ratio=$(python3 -c "print(f'{float($m)/float($r):.2f}')")
    echo "| ${t^^} | $p | $r | $m | $ratio |"
  done
done

# XADD: one entry appended to one stream with an auto ID, as Redis 7.2's own
# redis-benchmark xadd test does (7.0's has none).
for p in 1 16; do
  r=$(rps_cmd "$REDIS_PORT" "$p" XADD mystream "*" myfield "value-__rand_int__")
  m=$(rps_cmd "$TANDEM_PORT" "$p" XADD mystream "*" myfield "value-__rand_int__")
  ratio=$(python3 -c "print(f'{float($m)/float($r):.2f}')")
  echo "| XADD | $p | $r | $m | $ratio |"
done

# Bitmaps and HyperLogLog: BITCOUNT of a 1 KB string; PFADD of random elements to one
# HLL (sparse at first, dense after a few thousand elements, as in Redis).
payload=$(python3 -c "import random; random.seed(7); print(''.join(random.choice('abcdefghij') for _ in range(1024)))")
for port in "$REDIS_PORT" "$TANDEM_PORT"; do redis-cli -p "$port" set bitcount:key "$payload" >/dev/null; done
for p in 1 16; do
  for row in "BITCOUNT|BITCOUNT bitcount:key" "PFADD|PFADD pfadd:key __rand_int__"; do
    name=${row%%|*}; read -r -a cmd <<<"${row#*|}"
    r=$(rps_cmd "$REDIS_PORT" "$p" "${cmd[@]}"); m=$(rps_cmd "$TANDEM_PORT" "$p" "${cmd[@]}")
    ratio=$(python3 -c "print(f'{float($m)/float($r):.2f}')")
    echo "| $name | $p | $r | $m | $ratio |"
  done
done

# Memory: 1,000,000 distinct keys with 100-byte values, loaded with redis-cli --pipe.
redis-cli -p "$REDIS_PORT" flushall >/dev/null; redis-cli -p "$TANDEM_PORT" flushall >/dev/null
python3 bench/load.py "$KEYS" >"$work/load.resp"
redis-cli -p "$REDIS_PORT" --pipe <"$work/load.resp" >/dev/null
redis-cli -p "$TANDEM_PORT" --pipe <"$work/load.resp" >/dev/null
# Measured once both have settled (allocators return freed pages after a delay).
sleep 3
memory_table "memory after $KEYS keys × 100 B"
fi

# Small containers, on fresh servers (RSS does not go back down after FLUSHALL).
[ "${SMALL:-1}" = 1 ] || exit 0
for kind in ${SMALL_KINDS:-hashes sets intsets zsets lists volatile}; do
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
  rm -rf "$work/data"; mkdir -p "$work/data"
  REDIS_PORT=$((REDIS_PORT + 1)); TANDEM_PORT=$((TANDEM_PORT + 1))
  start_redis; start_tandem
  wait_ready "$REDIS_PORT"; wait_ready "$TANDEM_PORT"
  python3 bench/load.py "$KEYS" "$kind" >"$work/load.resp"
  redis-cli -p "$REDIS_PORT" --pipe <"$work/load.resp" >/dev/null
  redis-cli -p "$TANDEM_PORT" --pipe <"$work/load.resp" >/dev/null
  sleep 3
  if [ "$kind" = volatile ]; then
    memory_table "memory after $KEYS keys × 100 B with a TTL"
  else
    memory_table "memory after $KEYS small $kind (10 each)"
  fi
done
