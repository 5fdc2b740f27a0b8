#!/usr/bin/env bash
# Scripts side by side: tandem (development topology) vs redis-server, same machine,
# same run. redis-benchmark -c 50 -n $REQUESTS EVALSHA <sha> 1 key for a script that
# INCRs and one that GETs and SETs, at -P 1 and -P 16; then the instruction rate of a
# runaway loop (what the default script budget is measured against).
#
#   bash bench/scripting.sh                  # REQUESTS=200000
#   REQUESTS=50000 bash bench/scripting.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-200000}
REDIS_PORT=${REDIS_PORT:-6392}
TANDEM_PORT=${TANDEM_PORT:-9614}
target=${CARGO_TARGET_DIR:-target}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
# TANDEM_BIN: a binary already built (skips the release build).
[[ -n "${TANDEM_BIN:-}" ]] || cargo build --release --quiet
bin=$(realpath "${TANDEM_BIN:-$target/release/tandem}")

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
(cd "$work" && RUST_LOG=warn exec "$bin" server --port "$TANDEM_PORT") >"$work/tandem.log" 2>&1 &
pids+=($!)
wait_ready() {
  for _ in $(seq 1 200); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "server on port $1 did not start" >&2; exit 1
}
wait_ready "$REDIS_PORT"; wait_ready "$TANDEM_PORT"

INCR="return redis.call('incr', KEYS[1])"
GETSET="local v = redis.call('get', KEYS[1]) redis.call('set', KEYS[1], 'x') return v"
rps() { # port sha pipeline
  redis-benchmark -p "$1" -c 50 -n "$REQUESTS" -P "$3" -q --csv EVALSHA "$2" 1 key 2>/dev/null \
    | awk -F'","' '{gsub(/"/,"",$2); v=$2} END {print v}'
}
echo "| script | pipeline | redis rps | tandem rps | tandem/redis |"
echo "|---|---|---|---|---|"
for name in INCR GETSET; do
  body=${!name}
  rsha=$(redis-cli -p "$REDIS_PORT" script load "$body"); tsha=$(redis-cli -p "$TANDEM_PORT" script load "$body")
  for p in 1 16; do
    r=$(rps "$REDIS_PORT" "$rsha" "$p"); t=$(rps "$TANDEM_PORT" "$tsha" "$p")
    echo "| $name | $p | $r | $t | $(python3 -c "print(f'{float($t)/float($r):.2f}')") |"
  done
done

# The runaway loop: how many instructions per second the budget counts here.
redis-cli -p "$TANDEM_PORT" tandem.scriptlimits instructions 1000000000 >/dev/null
start=$(date +%s.%N)
redis-cli -p "$TANDEM_PORT" eval "while true do end" 0 >/dev/null
end=$(date +%s.%N)
echo
python3 -c "s=$end-$start; print(f'runaway loop: 1e9 instructions in {s:.2f} s = {1e9/s/1e6:.0f} million instructions/s; the default budget of 5e7 stops it in {5e7/(1e9/s):.2f} s')"
