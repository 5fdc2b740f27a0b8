#!/usr/bin/env bash
# Client throughput with the management console open and Prometheus scraping, vs
# without: the same tandem server (development topology, management port on), the same
# redis-benchmark rows as bench/compare.sh, each row run without and with watchers in
# alternation (ROUNDS times), so machine noise hits both alike.
#
#   bash bench/management.sh
#   REQUESTS=100000 ROUNDS=3 bash bench/management.sh
#
# "Watched" means, during the row: one console feed open (an SSE client on
# /api/v1/live, which makes the server gather the array's view every second) and a
# scrape of /metrics every second, as Prometheus with scrape_interval 1s.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-300000}
ROUNDS=${ROUNDS:-3}
TANDEM_PORT=${TANDEM_PORT:-9621}
MANAGEMENT_PORT=${MANAGEMENT_PORT:-9641}
TARGET=${CARGO_TARGET_DIR:-target}

if ! command -v redis-benchmark >/dev/null || ! command -v curl >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools curl >/dev/null
fi
cargo build --release --quiet
BIN=$(cd "$TARGET" && pwd)/release/tandem

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

(cd "$work" && RUST_LOG=warn exec "$BIN" server --port "$TANDEM_PORT" --management-port "$MANAGEMENT_PORT") >"$work/tandem.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do redis-cli -p "$TANDEM_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

rps() { # test pipeline
  redis-benchmark -p "$TANDEM_PORT" -c 50 -n "$REQUESTS" -P "$2" -t "$1" -r 100000 -q --csv 2>/dev/null \
    | awk -F'","' 'NR>1 || $1 !~ /test/ {gsub(/"/,"",$2); print $2; exit}'
}

watch_start() {
  curl -sN "http://127.0.0.1:$MANAGEMENT_PORT/api/v1/live" >"$work/live.txt" &
  WATCH_PIDS=($!)
  (while true; do curl -s -o /dev/null "http://127.0.0.1:$MANAGEMENT_PORT/metrics"; echo x >>"$work/scrapes"; sleep 1; done) &
  WATCH_PIDS+=($!)
}
watch_stop() { kill "${WATCH_PIDS[@]}" 2>/dev/null || true; wait "${WATCH_PIDS[@]}" 2>/dev/null || true; }

# The cost of watching, less exposed to other load than throughput: CPU time the idle
# server uses over IDLE_SECS without watchers, then with the console feed and the
# 1 s scrape.
IDLE_SECS=${IDLE_SECS:-30}
PID=${pids[0]}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
a=$(cpu_ticks); sleep "$IDLE_SECS"; b=$(cpu_ticks)
watch_start; c=$(cpu_ticks); sleep "$IDLE_SECS"; d=$(cpu_ticks); watch_stop
hz=$(getconf CLK_TCK)
echo "idle server CPU over ${IDLE_SECS} s: without watchers $(( (b - a) * 1000 / hz )) ms; with the console feed and a 1 s scrape $(( (d - c) * 1000 / hz )) ms"
echo
[ "${SKIP_TABLE:-0}" = 1 ] && exit 0

echo "| test | pipeline | without (rps, median of $ROUNDS) | console + 1 s scrape (rps, median of $ROUNDS) | watched/without |"
echo "|---|---|---|---|---|"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for p in 1 16; do
  for t in set get incr lpush hset; do
    plain=(); watched=()
    for _ in $(seq 1 "$ROUNDS"); do
      plain+=("$(rps "$t" "$p")")
      watch_start; watched+=("$(rps "$t" "$p")"); watch_stop
    done
    a=$(printf '%s\n' "${plain[@]}" | median); b=$(printf '%s\n' "${watched[@]}" | median)
    echo "| ${t^^} | $p | $a | $b | $(python3 -c "print(f'{float($b)/float($a):.2f}')") |"
  done
done
frames=$(grep -c '^event: view' "$work/live.txt" || true)
echo
echo "live frames received in the last watched row: $frames; scrapes in all: $(wc -l <"$work/scrapes")"
