#!/usr/bin/env bash
# An array of two stripes against a Redis Cluster of two masters, same machine, same
# run: tandem (two stripes of one server each, in memory) and redis-server 7
# (--cluster-enabled yes, no persistence, slots 0-8191 and 8192-16383, joined by
# CLUSTER MEET),
# both driven by `redis-benchmark --cluster` (it reads CLUSTER NODES and sends each
# key to its slot's server, on the cluster ports CLUSTER NODES advertises). Then the same tandem array through a plain client
# connected to one server: about half the keys are another stripe's, forwarded.
#
#   bash bench/array.sh
#   REQUESTS=2000000 ROUNDS=3 bash bench/array.sh
#   PIPELINES=1 TESTS=get ROUNDS=5 bash bench/array.sh    # one row
#
# Prints a markdown table of requests/s (median of ROUNDS, the two systems
# alternating) and the ratios. REQUESTS is 1,000,000 by default: redis-benchmark's
# `--cluster` runs end on a 250 ms tick (their times read 0.251, 0.501, 2.004,
# 2.252 s), so a run of 200,000 requests (about 2 s) can only tell ratios ~12 %
# apart; the `-P 1` rows want a run of 10 s or more.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-1000000}
ROUNDS=${ROUNDS:-3}
BASE=${BASE_PORT:-7461}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
if [ -z "${TANDEM_BIN:-}" ]; then
  cargo build --release --quiet
  TANDEM_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/tandem
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

R1=$BASE; R2=$((BASE + 1)); T1=$((BASE + 10)); T2=$((BASE + 11))
for p in $R1 $R2; do
  mkdir -p "$work/redis-$p"
  (cd "$work/redis-$p" && exec redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file nodes.conf \
    --save "" --appendonly no --daemonize no) >"$work/redis-$p.log" 2>&1 &
  pids+=($!)
done
cat >"$work/tandem.toml" <<EOF
[cluster]
name = "bench"
secret = "bench-secret"

[[stripe]]
name = "A"
[[stripe.server]]
name = "a1"
host = "127.0.0.1"
client-port = $T1
cluster-port = $((T1 + 50))
group-port = $((T1 + 100))
management-port = 0
data = "data/a1"
restartable = false

[[stripe]]
name = "B"
[[stripe.server]]
name = "b1"
host = "127.0.0.1"
client-port = $T2
cluster-port = $((T2 + 50))
group-port = $((T2 + 100))
management-port = 0
data = "data/b1"
restartable = false
EOF
for n in a1 b1; do
  (cd "$work" && RUST_LOG=warn exec "$TANDEM_BIN" server --config tandem.toml --name "$n") >"$work/$n.log" 2>&1 &
  pids+=($!)
done
wait_ready() {
  for _ in $(seq 1 200); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "server on port $1 did not start" >&2; exit 1
}
for p in $R1 $R2 $T1 $T2; do wait_ready "$p"; done
# `redis-cli --cluster create` wants three masters at least: two are joined by hand,
# with the slots split as tandem splits them.
redis-cli -p "$R1" cluster addslotsrange 0 8191 >/dev/null
redis-cli -p "$R2" cluster addslotsrange 8192 16383 >/dev/null
redis-cli -p "$R1" cluster meet 127.0.0.1 "$R2" >/dev/null
cluster_ok() { # port
  for _ in $(seq 1 200); do
    redis-cli -p "$1" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && return 0; sleep 0.05
  done
  echo "the cluster on port $1 is not ok" >&2; exit 1
}
for p in $R1 $R2 $T1 $T2; do cluster_ok "$p"; done

rps() { # port test pipeline [--cluster]
  redis-benchmark -p "$1" -c 50 -n "$REQUESTS" -P "$3" -t "$2" -r 100000 -q --csv ${4:-} 2>/dev/null \
    | awk -F'","' '{gsub(/"/,"",$2); if ($2 ~ /^[0-9.]+$/) {print $2; exit}}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { python3 -c "print(f'{float($1)/float($2):.2f}')"; }

echo "| test | pipeline | Redis Cluster rps (--cluster) | tandem array rps (--cluster) | tandem/redis | tandem, plain client on one server rps | plain/--cluster |"
echo "|---|---|---|---|---|---|---|"
for p in ${PIPELINES:-1 16}; do
  for t in ${TESTS:-set get}; do
    r=(); m=(); f=()
    for _ in $(seq 1 "$ROUNDS"); do
      r+=("$(rps "$R1" "$t" "$p" --cluster)")
      m+=("$(rps "$T1" "$t" "$p" --cluster)")
      f+=("$(rps "$T1" "$t" "$p")")
    done
    a=$(printf '%s\n' "${r[@]}" | median); b=$(printf '%s\n' "${m[@]}" | median); c=$(printf '%s\n' "${f[@]}" | median)
    echo "| ${t^^} | $p | $a | $b | $(ratio "$b" "$a") | $c | $(ratio "$c" "$b") |"
  done
done
echo
echo "keys per stripe after the run: tandem a1 $(redis-cli -p "$((T1 + 50))" dbsize), b1 $(redis-cli -p "$((T2 + 50))" dbsize) (cluster ports: each its own stripe); redis $(redis-cli -p "$R1" dbsize), $(redis-cli -p "$R2" dbsize)"
