#!/usr/bin/env bash
# Lock throughput (issue 13's benchmark), side by side, same machine, same run:
#   redis   redis-server 7, the single-instance recipe: SET name token NX PX 30000,
#           released by a Lua compare-and-delete (EVALSHA);
#   tandem  a stripe of 3 restartable servers (every lock and release is a log entry
#           a majority has fsynced), TANDEM.LOCK name TTL 30000 → fencing token,
#           TANDEM.UNLOCK name token; clients on the active, then on a mirror.
#           RESTARTABLE=false: the same stripe with servers that keep their log in
#           memory (replicated to a majority before the reply, nothing on disk: what
#           redis-server --save "" has on disk).
# CLIENTS connections, one acquire+release pair at a time each, random names among
# NAMES, SECONDS per row (examples/lockbench.rs). Prints pairs/s and tandem/redis.
#
#   bash bench/locks.sh                      # CLIENTS=50 SECONDS=10
#   TANDEM_BIN=/path/to/tandem bash bench/locks.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-50}
DURATION=${SECONDS_EACH:-10}
NAMES=${NAMES:-10000}
BASE_PORT=${BASE_PORT:-9780}
REDIS_PORT=$((BASE_PORT + 30))
T_CLIENT=($((BASE_PORT)) $((BASE_PORT + 1)) $((BASE_PORT + 2)))
T_GROUP=($((BASE_PORT + 10)) $((BASE_PORT + 11)) $((BASE_PORT + 12)))
T_MGMT=($((BASE_PORT + 20)) $((BASE_PORT + 21)) $((BASE_PORT + 22)))

command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
bin=${TANDEM_BIN:-$PWD/target/release/tandem}
[ -x "$bin" ] || cargo build --release --quiet
cargo build --release --quiet --example lockbench
lockbench=${CARGO_TARGET_DIR:-$PWD/target}/release/examples/lockbench

work=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")
source bench/stripe_lib.sh
redis_pid=
cleanup() { stop_members; [ -n "$redis_pid" ] && stop_pids 9 "$redis_pid"; rm -rf "$work"; }
trap cleanup EXIT

for port in "${T_CLIENT[@]}" "${T_GROUP[@]}" "${T_MGMT[@]}" "$REDIS_PORT"; do
  port_free "$port" || { echo "port $port is in use: stop that process or set BASE_PORT" >&2; exit 1; }
done
redis-server --port "$REDIS_PORT" --save "" --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
stripe_config 3 0 1s
for i in 1 2 3; do start_member "server$i"; done
wait_whole 60
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.05; done
active=$(active_server)
mirror=$(tandem_states | awk '$2 == "PASSIVE-STANDBY" {print $1; exit}')

rate() { "$lockbench" --clients "$CLIENTS" --seconds "$DURATION" --names "$NAMES" "$@" | tee /dev/stderr | awk '{print $1}'; }
kind=$([ "${RESTARTABLE:-true}" = true ] && echo "restartable (fsynced)" || echo "in-memory (restartable = false)")
echo "locks: $CLIENTS clients, $NAMES names, ${DURATION}s per row; tandem: 3 $kind servers, election-time 1s; $(nproc) cores"
r=$(rate --kind redis --port "$REDIS_PORT")
ta=$(rate --kind tandem --port "$(client_port "$active")")
tm=$(rate --kind tandem --port "$(client_port "$mirror")")
printf '\n| row | pairs/s | tandem/redis |\n|---|---|---|\n'
printf '| redis SET NX PX + Lua release | %s | |\n' "$r"
printf '| tandem, clients on the active | %s | %.2f |\n' "$ta" "$(echo "$ta / $r" | bc -l)"
printf '| tandem, clients on a mirror | %s | %.2f |\n' "$tm" "$(echo "$tm / $r" | bc -l)"
