#!/usr/bin/env bash
# Failover time: a stripe of 3 restartable servers (or, with --voter, 2 servers and a
# voter), a client writing without pause, ROUNDS kills (-9) of the active; each round
# measures kill → first acknowledged write through the client, then restarts the
# killed server and waits for the stripe to be whole again (bench/failover.py).
# Prints every round, the median and the p99 (nearest rank: with fewer than 100
# rounds the p99 is the maximum).
#
#   bash bench/failover.sh                  # ROUNDS=20, 3 servers
#   bash bench/failover.sh --voter          # 2 servers + 1 voter
#   ROUNDS=40 TIMEOUT=0.1 TANDEM_BIN=/path/to/tandem bash bench/failover.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VOTER=0
[ "${1:-}" = "--voter" ] && VOTER=1
ROUNDS=${ROUNDS:-20}
TIMEOUT=${TIMEOUT:-0.25}       # the writer's socket timeout (s): a retry is at most this late
ELECTION=${ELECTION:-1s}
BASE_PORT=${BASE_PORT:-9760}
T_CLIENT=($((BASE_PORT)) $((BASE_PORT + 1)) $((BASE_PORT + 2)))
T_GROUP=($((BASE_PORT + 10)) $((BASE_PORT + 11)) $((BASE_PORT + 12)))
T_MGMT=($((BASE_PORT + 20)) $((BASE_PORT + 21)) $((BASE_PORT + 22)))

command -v redis-cli >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools >/dev/null; }
python3 -c "import redis" 2>/dev/null || python3 -m pip install -q redis
bin=${TANDEM_BIN:-$PWD/target/release/tandem}
[ -x "$bin" ] || cargo build --release --quiet

work=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")
# Every member's pid is in $work/NAME.pid: failover.py rewrites it when it restarts one.
source bench/stripe_lib.sh
cleanup() { stop_members; rm -rf "$work"; }
trap cleanup EXIT

servers=3 voters=0
[ "$VOTER" = 1 ] && servers=2 voters=1
for port in "${T_CLIENT[@]:0:$servers}" "${T_GROUP[@]}" "${T_MGMT[@]:0:$servers}"; do
  port_free "$port" || { echo "port $port is in use: stop that process or set BASE_PORT" >&2; exit 1; }
done
stripe_config "$servers" "$voters" "$ELECTION"
members=()
for i in $(seq 1 "$servers"); do start_member "server$i"; members+=("server$i:$(client_port "server$i")"); done
[ "$VOTER" = 1 ] && start_member voter1
wait_whole 60

status=()
[ "$STATES" = status ] && status=(--status-cmd "$(printf '%q ' "$bin" status --config "$conf")")
echo "tandem stripe: $servers servers$( [ "$VOTER" = 1 ] && echo " + 1 voter"), restartable, election-time $ELECTION;" \
  "$ROUNDS kills of the active; writer timeout ${TIMEOUT}s; states from $STATES; $(nproc) cores"
python3 bench/failover.py --work "$work" --members "$(IFS=,; echo "${members[*]}")" --rounds "$ROUNDS" --timeout "$TIMEOUT" "${status[@]}"
