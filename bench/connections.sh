#!/usr/bin/env bash
# Throughput and latency against the number of connections, tandem (development
# topology) vs redis-server (no persistence), same machine, same run:
# redis-benchmark -P 1 -t set,get at -c 1, 50, 500 and 5,000, ROUNDS rounds, the two
# servers taking turns first. Prints, per row, the median requests/s of each, the
# median of the per-round ratios tandem/redis, and each server's median p50 and p99
# latency (redis-benchmark's, closed loop: each connection waits for its reply).
#
#   bash bench/connections.sh                 # ROUNDS=3 CLIENTS="1 50 500 5000"
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-1 50 500 5000}
REDIS_PORT=${REDIS_PORT:-6393}
TANDEM_PORT=${TANDEM_PORT:-9613}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
cargo build --release --quiet
TANDEM_BIN=${TANDEM_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/tandem}
# 5,000 connections need as many descriptors on each side, and some to spare.
ulimit -n 20000 2>/dev/null || { echo "cannot raise the open-files limit to 20000 (ulimit -n is $(ulimit -n))" >&2; exit 1; }

for port in "$REDIS_PORT" "$TANDEM_PORT"; do
  if redis-cli -p "$port" ping >/dev/null 2>&1; then echo "port $port is already in use: stop that server first" >&2; exit 1; fi
done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --maxclients 10000 --dir "$work" \
  --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
(cd "$work" && RUST_LOG=warn exec "$TANDEM_BIN" server --port "$TANDEM_PORT") >"$work/tandem.log" 2>&1 &
pids+=($!)
for port in "$REDIS_PORT" "$TANDEM_PORT"; do
  for _ in $(seq 1 3000); do [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break; sleep 0.01; done
  [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] || { echo "the server on port $port never answered" >&2; exit 1; }
done

# One redis-benchmark run: port clients test -> "rps p50 p99"
run() {
  local requests=$((200000 > $2 * 40 ? 200000 : $2 * 40))
  [ "$2" -eq 1 ] && requests=50000
  redis-benchmark -p "$1" -c "$2" -n "$requests" -P 1 -t "$3" -r 100000 --csv 2>/dev/null |
    awk -F'","' '$1 !~ /test/ {gsub(/"/, "", $0); split($0, f, ","); print f[2], f[5], f[7]; exit}'
}

results="$work/results"
for round in $(seq 1 "$ROUNDS"); do
  for c in $CLIENTS; do
    for t in set get; do
      if [ $((round % 2)) -eq 1 ]; then
        r=$(run "$REDIS_PORT" "$c" "$t"); m=$(run "$TANDEM_PORT" "$c" "$t")
      else
        m=$(run "$TANDEM_PORT" "$c" "$t"); r=$(run "$REDIS_PORT" "$c" "$t")
      fi
      [ -n "$r" ] && [ -n "$m" ] || { echo "a run at -c $c ($t) gave no figures" >&2; exit 1; }
      echo "$t $c $r $m" >>"$results"
    done
  done
done
python3 - "$results" "$ROUNDS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    t, c, rr, rp50, rp99, mr, mp50, mp99 = line.split()
    rows.setdefault((t, int(c)), []).append(tuple(map(float, (rr, rp50, rp99, mr, mp50, mp99))))
print(f"{sys.argv[2]} rounds, medians")
print()
print("| test | connections | redis rps | tandem rps | tandem/redis | redis p50 / p99 (ms) | tandem p50 / p99 (ms) |")
print("|---|---|---|---|---|---|---|")
med = statistics.median
for (t, c), runs in sorted(rows.items(), key=lambda kv: (kv[0][0] != "set", kv[0][1])):
    col = lambda i: med(r[i] for r in runs)
    ratio = med(r[3] / r[0] for r in runs)
    print(f"| {t.upper()} | {c:,} | {col(0):,.0f} | {col(3):,.0f} | {ratio:.2f} | {col(1):.3f} / {col(2):.3f} | {col(4):.3f} / {col(5):.3f} |")
PY
