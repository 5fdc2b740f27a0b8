#!/usr/bin/env bash
# Latency at half of the peer's maximum throughput, tandem (development topology) vs
# redis-server (no persistence), same machine, same run (issue 16's latency row):
#   1. Each server's maximum: redis-benchmark -c 50 -P 1 -t set|get (closed loop).
#   2. An open loop at RATE = half of Redis's maximum for that command (the same
#      offered load for both): examples/latency.rs, 50 connections, RUN_SECONDS a run,
#      latency from when each request was due, so stalls are charged in full.
#   3. ROUNDS rounds, the servers taking turns first; medians of p50, p99, p99.9.
#
#   bash bench/latency.sh                 # ROUNDS=3 RUN_SECONDS=15 CONNECTIONS=50
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
RUN_SECONDS=${RUN_SECONDS:-15}
CONNECTIONS=${CONNECTIONS:-50}
REDIS_PORT=${REDIS_PORT:-6393}
TANDEM_PORT=${TANDEM_PORT:-9613}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
cargo build --release --quiet --bin tandem --example latency
target=${CARGO_TARGET_DIR:-$PWD/target}/release
TANDEM_BIN=${TANDEM_BIN:-$target/tandem}
latency=$target/examples/latency

for port in "$REDIS_PORT" "$TANDEM_PORT"; do
  if redis-cli -p "$port" ping >/dev/null 2>&1; then echo "port $port is already in use: stop that server first" >&2; exit 1; fi
done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
(cd "$work" && RUST_LOG=warn exec "$TANDEM_BIN" server --port "$TANDEM_PORT") >"$work/tandem.log" 2>&1 &
pids+=($!)
for port in "$REDIS_PORT" "$TANDEM_PORT"; do
  for _ in $(seq 1 3000); do [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break; sleep 0.01; done
  [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] || { echo "the server on port $port never answered" >&2; exit 1; }
done

max_rps() { # port test
  redis-benchmark -p "$1" -c "$CONNECTIONS" -n 300000 -P 1 -t "$2" -r 100000 --csv 2>/dev/null |
    awk -F'","' '$1 !~ /test/ {gsub(/"/, "", $2); print int($2); exit}'
}
open_loop() { # port test rate -> "p50 p99 p99.9 achieved"
  "$latency" --port "$1" --command "$2" --rate "$3" --connections "$CONNECTIONS" --seconds "$RUN_SECONDS" |
    awk '{for (i = 1; i < NF; i++) v[$i] = $(i + 1); print v["p50"], v["p99"], v["p99.9"], v["achieved"]}'
}

results="$work/results"
for t in set get; do
  redis_max=$(max_rps "$REDIS_PORT" "$t"); tandem_max=$(max_rps "$TANDEM_PORT" "$t")
  rate=$((redis_max / 2))
  echo "$t: maximum redis $redis_max, tandem $tandem_max requests/s; offered $rate" >&2
  for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
      r=$(open_loop "$REDIS_PORT" "$t" "$rate"); m=$(open_loop "$TANDEM_PORT" "$t" "$rate")
    else
      m=$(open_loop "$TANDEM_PORT" "$t" "$rate"); r=$(open_loop "$REDIS_PORT" "$t" "$rate")
    fi
    echo "$t $redis_max $tandem_max $rate $r $m" >>"$results"
    echo "  round $round: redis p50/p99/p99.9 ${r% *} | tandem ${m% *}" >&2
  done
done

python3 - "$results" "$ROUNDS" <<'PY'
import sys, statistics as st
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    rows[f[0]].append([float(x) for x in f[1:]])
print(f"{sys.argv[2]} rounds, medians; latency in ms from when each request was due")
print()
print("| test | redis max rps | tandem max rps | offered rps | redis p50 / p99 / p99.9 | tandem p50 / p99 / p99.9 | tandem/redis p50 / p99 / p99.9 |")
print("|---|---|---|---|---|---|---|")
for t, runs in rows.items():
    med = lambda i: st.median(r[i] for r in runs)
    rm, tm = [med(i) for i in (3, 4, 5)], [med(i) for i in (7, 8, 9)]
    print(f"| {t.upper()} | {med(0):,.0f} | {med(1):,.0f} | {med(2):,.0f} | "
          + " / ".join(f"{x:.3f}" for x in rm) + " | " + " / ".join(f"{x:.3f}" for x in tm) + " | "
          + " / ".join(f"{b / a:.2f}" for a, b in zip(rm, tm)) + " |")
PY
