#!/usr/bin/env bash
# Runs units of Redis's own test suite (7.0.15, external-server mode) against a fresh
# tandem and a fresh redis-server on free ports, and prints passed/failed/aborted per
# unit for both, and tandem's share of the tests redis-server passes.
#
#   bash bench/redis-suite.sh /work/redis-7.0.15 unit/scripting unit/functions
#   REDIS_SUITE=/work/redis-7.0.15 bash bench/redis-suite.sh      # default units
#
# The suite is not in this repository: bring it with the search tool's fetch of
# github redis/redis, then `git --git-dir=<mirror> archive 7.0.15 tests runtest | tar -x -C DIR`.
# TANDEM_BIN picks the binary (default: $CARGO_TARGET_DIR or target, debug, built if missing);
# SCRIPTLIMITS, if set, is sent as `TANDEM.SCRIPTLIMITS $SCRIPTLIMITS` first (Redis's
# tests kill runaway scripts that tandem's default instruction budget stops first).
set -euo pipefail
cd "$(dirname "$0")/.."

suite=${REDIS_SUITE:-}
if [[ $# -gt 0 && -d "$1" ]]; then suite=$1; shift; fi
units=("$@")
[[ ${#units[@]} -eq 0 ]] && units=(unit/scripting unit/functions)
if [[ -z "$suite" || ! -x "$suite/runtest" || ! -d "$suite/tests" ]]; then
  echo "Redis's test suite not found (give its directory, or REDIS_SUITE=DIR): it needs DIR/runtest and DIR/tests." >&2
  echo "Bring it with fetch github:redis/redis, then: git --git-dir=<mirror> archive 7.0.15 tests runtest | tar -x -C DIR" >&2
  exit 2
fi
command -v redis-server >/dev/null && command -v tclsh >/dev/null || {
  echo "redis-server and tclsh are needed: run bash scripts/test-deps.sh (and apt-get install tcl)" >&2
  exit 2
}
bin=${TANDEM_BIN:-${CARGO_TARGET_DIR:-target}/debug/tandem}
[[ -x "$bin" ]] || cargo build --quiet
bin=$(realpath "$bin")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
wait_ready() {
  for _ in $(seq 1 400); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "server on port $1 did not start" >&2; exit 1
}

# Counts [ok], [err] and [exception] lines of one runtest output.
count() { sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '/^\[ok\]/{o++} /^\[err\]/{e++} /^\[exception\]/{x++} END{printf "%d %d %d", o, e, x}'; }

run_unit() { # server port unit log
  (cd "$suite" && timeout 1200 ./runtest --host 127.0.0.1 --port "$2" --singledb --tags -needs:debug --single "$3") >"$4" 2>&1 || true
}

printf '| unit | redis passed | redis failed | redis aborted | tandem passed | tandem failed | tandem aborted | tandem passes of redis passes |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for unit in "${units[@]}"; do
  rport=$(free_port); tport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
  pids+=($!)
  (cd "$work" && RUST_LOG=warn exec "$bin" server --port "$tport") >"$work/tandem-${unit//\//_}.log" 2>&1 &
  pids+=($!)
  wait_ready "$rport"; wait_ready "$tport"
  if [[ -n "${SCRIPTLIMITS:-}" ]]; then
    # shellcheck disable=SC2086
    redis-cli -p "$tport" tandem.scriptlimits $SCRIPTLIMITS >/dev/null
  fi
  run_unit redis "$rport" "$unit" "$work/redis-${unit//\//_}.out"
  run_unit tandem "$tport" "$unit" "$work/tandem-${unit//\//_}.out"
  read -r ro re rx <<<"$(count "$work/redis-${unit//\//_}.out")"
  read -r to te tx <<<"$(count "$work/tandem-${unit//\//_}.out")"
  # Tests passed by both, over tests passed by redis-server (names compared).
  both=$(comm -12 <(sed 's/\x1b\[[0-9;]*m//g' "$work/redis-${unit//\//_}.out" | grep '^\[ok\]' | sed 's/ ([0-9]* ms)$//' | sort) \
                  <(sed 's/\x1b\[[0-9;]*m//g' "$work/tandem-${unit//\//_}.out" | grep '^\[ok\]' | sed 's/ ([0-9]* ms)$//' | sort) | wc -l)
  share=$(python3 -c "print(f'{100*$both/max($ro,1):.1f} %')")
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$unit" "$ro" "$re" "$rx" "$to" "$te" "$tx" "$share"
  if [[ -n "${KEEP_LOGS:-}" ]]; then mkdir -p "$KEEP_LOGS"; cp "$work"/*"${unit//\//_}"* "$KEEP_LOGS"/; fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=()
done
