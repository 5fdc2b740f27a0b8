#!/usr/bin/env bash
# Replicated durable writes, three copies, side by side, same machine, same run:
#   etcd        3 members (Debian etcd-server, default fsync), driven by etcd's own Go
#               client over gRPC (bench/etcd_put, built here from Debian's packages);
#   redis+WAIT  redis-server master + 2 replicas, appendonly yes appendfsync always on
#               all three; every batch of SETs followed by WAIT 2 0 on the connection
#               (bench/wait_load.py --wait 2): a write counts when both replicas have it;
#   tandem      one stripe of 3 servers, restartable = true: a SET is acknowledged once
#               a majority has it fsynced (bench/wait_load.py, plain SETs).
# SET, 50 connections, pipeline 1 and 16 (etcd: 50 gRPC connections carrying 50 and 800
# concurrent Puts), 64-byte values, 100,000 random keys, DURATION seconds each. Then,
# for reference, redis-benchmark on redis (replicas, no WAIT: asynchronous replication)
# and on tandem, REQUESTS requests each.
#
#   bash bench/replicated.sh                  # DURATION=10 REQUESTS=200000
#   bash bench/replicated.sh --peers-only     # etcd and redis only (no tandem build)
#   TANDEM_BIN=/path/to/tandem bash bench/replicated.sh
#   ETCD_CHECK_PERF=l bash bench/replicated.sh --peers-only   # adds etcdctl check perf --load=l (60 s)
set -euo pipefail
cd "$(dirname "$0")/.."

PEERS_ONLY=0
[ "${1:-}" = "--peers-only" ] && PEERS_ONLY=1
DURATION=${DURATION:-10}
REQUESTS=${REQUESTS:-200000}
VALUE=${VALUE:-64}
KEYSPACE=${KEYSPACE:-100000}
PROCS=${PROCS:-2}            # wait_load.py client processes (one is too slow at -P 1)
BASE_PORT=${BASE_PORT:-9700}
ETCD_CLIENT=($((BASE_PORT)) $((BASE_PORT + 1)) $((BASE_PORT + 2)))
ETCD_PEER=($((BASE_PORT + 3)) $((BASE_PORT + 4)) $((BASE_PORT + 5)))
REDIS=($((BASE_PORT + 10)) $((BASE_PORT + 11)) $((BASE_PORT + 12)))
T_CLIENT=($((BASE_PORT + 20)) $((BASE_PORT + 21)) $((BASE_PORT + 22)))
T_GROUP=($((BASE_PORT + 30)) $((BASE_PORT + 31)) $((BASE_PORT + 32)))
T_MGMT=($((BASE_PORT + 40)) $((BASE_PORT + 41)) $((BASE_PORT + 42)))

need=()
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || need+=(redis-server redis-tools)
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v go >/dev/null || need+=(golang-go)
[ -d /usr/share/gocode/src/go.etcd.io/etcd/clientv3 ] || need+=(golang-etcd-server-dev)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bin=${TANDEM_BIN:-$PWD/target/release/tandem}
[ "$PEERS_ONLY" = 1 ] || [ -x "$bin" ] || cargo build --release --quiet

work=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")   # every data directory on this one disk
pids=()
cleanup() { exec 2>/dev/null; [ ${#pids[@]} = 0 ] || stop_pids 9 "${pids[@]}"; wait || true; rm -rf "$work"; }
trap cleanup EXIT

source bench/stripe_lib.sh
ports=("${ETCD_CLIENT[@]}" "${ETCD_PEER[@]}" "${REDIS[@]}")
[ "$PEERS_ONLY" = 0 ] && ports+=("${T_CLIENT[@]}" "${T_GROUP[@]}" "${T_MGMT[@]}")
for port in "${ports[@]}"; do
  port_free "$port" || { echo "port $port is in use: stop that process or set BASE_PORT" >&2; exit 1; }
done

# etcd's load generator: etcd's own Go client, GOPATH mode on Debian's sources (offline).
mkdir -p "$work/go/src/etcd_put"
cp bench/etcd_put/main.go "$work/go/src/etcd_put/"
(cd "$work/go/src/etcd_put" && GO111MODULE=off GOFLAGS= GOPATH="$work/go:/usr/share/gocode" go build -o "$work/etcd_put" .)

etcd_pids=() redis_pids=() tandem_pids=()
cpu_ticks() { # pids...: user + system CPU they have used, in clock ticks
  local p t=0
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}
measure() { # "pids..." command...: runs the command; its output, then " cpu_us_per_op N": the
  # servers' CPU (all three members) per acknowledged write
  local before out after
  before=$(cpu_ticks $1); out=$("${@:2}"); after=$(cpu_ticks $1)
  echo "$out cpu_us_per_op $(python3 -c "import sys; t, o = float(sys.argv[1]), float(sys.argv[2]); print(f'{t * 1e6 / $(getconf CLK_TCK) / ($DURATION * o):.0f}' if o else '-')" "$((after - before))" "$(echo "$out" | field ops/s)")"
}
ratio() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{a / b:.2f}' if b else '-')" "$1" "$2"; }
field() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}'; }  # "ops/s 123 ..." → 123
deadline_loop() { # seconds description command...: until the command succeeds
  local end=$((SECONDS + $1)) what=$2; shift 2
  until "$@"; do [ $SECONDS -lt $end ] || { echo "$what: not ready after the deadline" >&2; exit 1; }; sleep 0.1; done
}

# --- etcd: 3 members -------------------------------------------------------------------
cluster="e1=http://127.0.0.1:${ETCD_PEER[0]},e2=http://127.0.0.1:${ETCD_PEER[1]},e3=http://127.0.0.1:${ETCD_PEER[2]}"
for i in 0 1 2; do
  etcd --name "e$((i + 1))" --data-dir "$work/etcd$((i + 1))" \
    --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token bench \
    --logger zap --log-outputs stderr --log-level warn >>"$work/etcd$((i + 1)).log" 2>&1 &
  pids+=($!); etcd_pids+=($!)
done
etcd_eps="127.0.0.1:${ETCD_CLIENT[0]},127.0.0.1:${ETCD_CLIENT[1]},127.0.0.1:${ETCD_CLIENT[2]}"
deadline_loop 60 etcd etcdctl --endpoints="$etcd_eps" endpoint health >/dev/null 2>&1
etcd_leader=$(etcdctl --endpoints="$etcd_eps" endpoint status -w json | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    if e["Status"]["header"]["member_id"] == e["Status"]["leader"]:
        print(e["Endpoint"])')

# --- redis: master + 2 replicas, every write fsynced on all three ----------------------
for i in 0 1 2; do
  mkdir -p "$work/redis$((i + 1))"
  args=(--port "${REDIS[$i]}" --bind 127.0.0.1 --appendonly yes --appendfsync always --save "" --dir "$work/redis$((i + 1))" --daemonize no)
  [ "$i" -gt 0 ] && args+=(--replicaof 127.0.0.1 "${REDIS[0]}")
  redis-server "${args[@]}" >>"$work/redis$((i + 1)).log" 2>&1 &
  pids+=($!); redis_pids+=($!)
done
redis_ready() { [ "$(redis-cli -p "${REDIS[0]}" info replication 2>/dev/null | grep -c 'state=online')" = 2 ]; }
deadline_loop 60 redis redis_ready

# --- tandem: one stripe of 3 restartable servers ---------------------------------------
if [ "$PEERS_ONLY" = 0 ]; then
  stripe_config 3 0 1s
  for i in 1 2 3; do start_member "server$i"; tandem_pids+=("$(cat "$work/server$i.pid")"); done
  pids+=("${tandem_pids[@]}")
  wait_whole 60
  tandem_active=$(client_port "$(active_server)")
fi

echo "etcd $(etcd --version | awk '/etcd Version/ {print $3}') leader $etcd_leader; redis $(redis-server --version | awk '{print $3}') master ${REDIS[0]};" \
  "$( [ "$PEERS_ONLY" = 0 ] && echo "tandem active on $tandem_active;" ) $(nproc) cores, data in $work"
[ "$PEERS_ONLY" = 0 ] || echo "(--peers-only: tandem not started)"
echo "load average before the measurements: $(cut -d' ' -f1-3 /proc/loadavg) (anything above ~0 is another process sharing the cores)"

# --- durable replicated SET: etcd vs redis+WAIT vs tandem ------------------------------
wl() { python3 bench/wait_load.py --port "$1" --pipeline "$2" --wait "$3" --clients 50 --duration "$DURATION" --value-size "$VALUE" --keyspace "$KEYSPACE" --procs "$PROCS"; }
echo
echo "| durable SET, 3 copies, -c 50 | etcd ops/s | redis+WAIT 2 0 ops/s | tandem ops/s | tandem/etcd | tandem/redis+WAIT |"
echo "|---|---|---|---|---|---|"
declare -A detail
for p in 1 16; do
  e=$(measure "${etcd_pids[*]}" "$work/etcd_put" -endpoints "$etcd_leader" -conns 50 -clients $((50 * p)) -duration "${DURATION}s" -val-size "$VALUE" -key-space "$KEYSPACE")
  w=$(measure "${redis_pids[*]}" wl "${REDIS[0]}" "$p" 2)
  t="-"; [ "$PEERS_ONLY" = 0 ] && t=$(measure "${tandem_pids[*]}" wl "$tandem_active" "$p" 0)
  detail[$p]="etcd: $e; redis+WAIT: $w; tandem: $t"
  eo=$(echo "$e" | field ops/s); wo=$(echo "$w" | field ops/s); to=$(echo "$t" | field ops/s)
  if [ -n "$to" ]; then te=$(ratio "$to" "$eo"); tw=$(ratio "$to" "$wo"); else to="-"; te="-"; tw="-"; fi
  echo "| -P $p | $eo | $wo | $to | $te | $tw |"
done
echo
for p in 1 16; do echo "-P $p  ${detail[$p]}"; done
echo "(cpu_us_per_op: CPU the system's three servers used during the run, divided by the writes acknowledged)"
echo "(etcd: bench/etcd_put, Go clientv3 over gRPC to the leader, 50 connections, -P 16 = 800 Puts in flight;"
echo " redis+WAIT and tandem: bench/wait_load.py, $PROCS Python processes, latencies per batch; ${DURATION} s each)"

# --- reference: asynchronous replication, and one tool for all -------------------------
rb() { # port pipeline
  redis-benchmark -p "$1" -c 50 -n "$REQUESTS" -P "$2" -t set -d "$VALUE" -r "$KEYSPACE" -q --csv 2>/dev/null \
    | awk -F'","' '$1 !~ /test/ {gsub(/"/,"",$2); print $2; exit}'
}
echo
echo "| SET, -c 50 (reference) | redis async (replicas, no WAIT) | tandem | tandem/redis async |"
echo "|---|---|---|---|"
for p in 1 16; do
  r=$(rb "${REDIS[0]}" "$p"); t="-"; [ "$PEERS_ONLY" = 0 ] && t=$(rb "$tandem_active" "$p")
  echo "| redis-benchmark -P $p | $r | $t | $( [ "$t" != - ] && ratio "$t" "$r" || echo -) |"
done
for p in 1 16; do
  r=$(wl "${REDIS[0]}" "$p" 0 | field ops/s)
  echo "| wait_load.py -P $p, no WAIT (the Python tool against redis-benchmark, same server) | $r | | |"
done

if [ -n "${ETCD_CHECK_PERF:-}" ]; then
  echo
  echo "etcdctl check perf --load=$ETCD_CHECK_PERF (60 s; its writes are rate-limited to the model's target,"
  echo "s: 150/s with 50 clients, m: 1000/s with 200, l: 8000/s with 500, xl: 15000/s with 1000 — pass/fail, not a maximum):"
  etcdctl --endpoints="$etcd_eps" check perf --load="$ETCD_CHECK_PERF" 2>&1 | tr '\r' '\n' | grep -v '^ *[0-9]* / [0-9]*' | tail -8 || true  # it exits 1 on FAIL
fi

echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
