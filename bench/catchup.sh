#!/usr/bin/env bash
# Catch-up: a stripe of 3 restartable servers is filled with KEYS keys × SIZE bytes
# (default 1,000,000 × 1000 B, about 1 GB) through the active; then a passive server
# (server3, or another passive if server3 is the active) is stopped, its data directory
# wiped, and it is started again: the time from that start until its INFO replication
# shows tandem_state:PASSIVE-STANDBY is the catch-up time from empty. The data size is
# the active's INFO memory used_memory (keys, values, the keyspace's overhead and
# whatever of the Raft log is still in memory), and also the raw keys + values.
#
#   bash bench/catchup.sh                     # KEYS=1000000 SIZE=1000
#   KEYS=200000 TANDEM_BIN=/path/to/tandem bash bench/catchup.sh
#   KEEP_LOGS=/some/dir RUST_LOG=info bash bench/catchup.sh   # keep the servers' logs
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-1000000}
SIZE=${SIZE:-1000}
DEADLINE=${DEADLINE:-900}      # seconds the new mirror may take
BASE_PORT=${BASE_PORT:-9790}
T_CLIENT=($((BASE_PORT)) $((BASE_PORT + 1)) $((BASE_PORT + 2)))
T_GROUP=($((BASE_PORT + 10)) $((BASE_PORT + 11)) $((BASE_PORT + 12)))
T_MGMT=($((BASE_PORT + 20)) $((BASE_PORT + 21)) $((BASE_PORT + 22)))

command -v redis-cli >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools >/dev/null; }
bin=${TANDEM_BIN:-$PWD/target/release/tandem}
[ -x "$bin" ] || cargo build --release --quiet

work=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")
source bench/stripe_lib.sh
cleanup() { stop_members; [ -n "${KEEP_LOGS:-}" ] && cp "$work"/*.log "$KEEP_LOGS"/ 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for port in "${T_CLIENT[@]}" "${T_GROUP[@]}" "${T_MGMT[@]}"; do
  port_free "$port" || { echo "port $port is in use: stop that process or set BASE_PORT" >&2; exit 1; }
done
stripe_config 3 0 1s
for i in 1 2 3; do start_member "server$i"; done
wait_whole 60
active=$(active_server); aport=$(client_port "$active")
victim=server3; [ "$active" = server3 ] && victim=server2
echo "tandem stripe: 3 servers, restartable; active $active; new mirror: $victim; states from $STATES; $(nproc) cores"

t0=$(date +%s.%N)
python3 bench/fill.py "$KEYS" "$SIZE" | redis-cli -p "$aport" --pipe >"$work/fill.out"
fill_s=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
tail -1 "$work/fill.out"
wait_whole 120
used=$(redis-cli -p "$aport" info memory | awk -F: '/^used_memory:/ {gsub(/\r/, "", $2); print $2}')
keys=$(redis-cli -p "$aport" dbsize)
echo "filled $keys keys × $SIZE B through the active in $fill_s s; active used_memory $((used / 1048576)) MB"

# The new mirror: stopped, wiped, started from nothing.
vpid=$(cat "$work/$victim.pid")
stop_pids TERM "$vpid"
rm -rf "$work/${victim:?}"
t0=$(date +%s.%N)
start_member "$victim"
end=$((SECONDS + DEADLINE)) seen="" s=""
until [ "$s" = PASSIVE-STANDBY ]; do
  [ $SECONDS -lt $end ] || { echo "$victim not PASSIVE-STANDBY after $DEADLINE s (states: $seen)" >&2; exit 1; }
  sleep 0.02
  s=$(tandem_state "$victim")
  # Every state the new mirror went through, with the time it was first seen.
  [ -n "$s" ] && [ "${seen##*=}" != "$s" ] && seen="$seen $(python3 -c "import time; print(f'{time.time() - $t0:.2f}s')")=$s"
done
t=$(python3 -c "import time; print(f'{time.time() - $t0:.2f}')")
echo "$victim states after its start:$seen"
dir_bytes=$(du -sb "$work/$victim" | cut -f1)
echo
echo "| catch-up from empty, $KEYS keys × $SIZE B | |"
echo "|---|---|"
raw=$((KEYS * (14 + SIZE)))
echo "| data (active's used_memory, MB) | $((used / 1048576)) |"
echo "| keys + values (MB) | $((raw / 1048576)) |"
echo "| new mirror's data directory afterwards (MB) | $((dir_bytes / 1048576)) |"
echo "| start → PASSIVE-STANDBY (s) | $t |"
echo "| rate (MB/s of used_memory) | $(python3 -c "print(f'{$used / 1048576 / $t:.0f}')") |"
echo "| rate (MB/s of keys + values) | $(python3 -c "print(f'{$raw / 1048576 / $t:.0f}')") |"
