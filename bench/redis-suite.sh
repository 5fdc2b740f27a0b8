#!/usr/bin/env bash
# Redis 7.0.15's own TCL unit tests in external-server mode, against a fresh Tandem
# and a fresh redis-server side by side, one unit at a time.
#
#   bash bench/redis-suite.sh SUITE_DIR [unit/...]     # or REDIS_SUITE=SUITE_DIR
#   bash bench/redis-suite.sh /work/redis-7.0.15 unit/scripting unit/functions
#
# SUITE_DIR holds Redis's `runtest` and `tests/` at tag 7.0.15, unpacked outside this
# repository (the suite is never committed):
#   git --git-dir=<redis mirror> archive 7.0.15 tests runtest | tar -x -C SUITE_DIR
#
# Environment:
#   TANDEM_BIN        tandem binary (default: the debug binary under $CARGO_TARGET_DIR or
#                     target/, built if missing; the suite measures behaviour, not speed)
#   REDIS_SERVER      redis-server binary (default: redis-server on PATH)
#   UNIT_TIMEOUT_S    wall-clock bound per unit and server (default 900)
#   LOG_DIR           where each run's output is kept (default: a temp directory)
#   SERVERS           "redis tandem" (default), or one of them
#   SCRIPTLIMITS      if set, sent as `TANDEM.SCRIPTLIMITS $SCRIPTLIMITS` to each fresh
#                     tandem first (Redis's tests kill runaway scripts that tandem's
#                     default instruction budget stops first)
#   SKIP_TESTS        test names, one a line, left out on both servers (Redis's --skiptest;
#                     a name several tests share leaves them all out); the output lists them
#   BY_DESIGN=1       also leave out, on both servers, the tests that
#                     bench/redis-suite-by-design.txt lists as checking what Tandem does
#                     differently by design (with the reason); the output lists them.
#
# Prints one markdown row per unit: tests redis-server passed, tests tandem passed and
# failed, whether tandem's run aborted (an exception, a timeout or no end), and the
# share of redis-server's passed tests (by name) that tandem passes too. Exit status 0 when the runs happened (whatever they found),
# 2 when the suite is absent (so CI without it can skip), 1 on a setup failure.
set -uo pipefail
cd "$(dirname "$0")/.."

SUITE=${REDIS_SUITE:-${REDIS_SUITE_DIR:-}}
if [ $# -gt 0 ] && [ -d "$1" ]; then SUITE=$1; shift; fi
if [ -z "$SUITE" ] || [ ! -x "$SUITE/runtest" ] || [ ! -f "$SUITE/tests/test_helper.tcl" ]; then
  echo "redis-suite: no Redis test suite at '${SUITE}' (give its directory as the first argument or REDIS_SUITE)." >&2
  echo "  unpack it with: git --git-dir=<redis mirror> archive 7.0.15 tests runtest | tar -x -C DIR" >&2
  exit 2
fi
SUITE=$(cd "$SUITE" && pwd)

DEFAULT_UNITS="unit/type/string unit/type/incr unit/type/hash unit/type/list unit/type/list-2 unit/type/list-3
unit/type/set unit/type/zset unit/type/stream unit/type/stream-cgroups unit/expire unit/keyspace unit/pubsub
unit/multi unit/protocol unit/scan unit/info-command unit/info unit/bitops unit/bitfield unit/hyperloglog
unit/geo unit/sort unit/tracking unit/introspection unit/introspection-2 unit/dump unit/maxmemory
unit/latency-monitor unit/slowlog unit/querybuf unit/limits unit/pause unit/quit unit/lazyfree unit/other
unit/wait unit/scripting unit/functions"
if [ $# -gt 0 ]; then UNITS="$*"; else UNITS=$DEFAULT_UNITS; fi

UNIT_TIMEOUT_S=${UNIT_TIMEOUT_S:-900}
SERVERS=${SERVERS:-redis tandem}
REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || true)}
if [[ " $SERVERS " == *" redis "* ]] && [ -z "$REDIS_SERVER" ]; then
  echo "redis-suite: redis-server not found (set REDIS_SERVER)" >&2
  exit 1
fi
command -v tclsh >/dev/null || { echo "redis-suite: tclsh not found (apt-get install tcl)" >&2; exit 1; }

if [[ " $SERVERS " == *" tandem "* ]] && [ -z "${TANDEM_BIN:-}" ]; then
  TANDEM_BIN="${CARGO_TARGET_DIR:-target}/debug/tandem"
  [ -x "$TANDEM_BIN" ] || cargo build --quiet || { echo "redis-suite: cargo build failed" >&2; exit 1; }
fi
[ -n "${TANDEM_BIN:-}" ] && TANDEM_BIN=$(realpath "$TANDEM_BIN")

work=$(mktemp -d)
LOG_DIR=${LOG_DIR:-$work/logs}
mkdir -p "$LOG_DIR"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work/run"
  [[ "$LOG_DIR" == "$work/logs" ]] || rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() { # port: PING answered within 20 s
  local i
  for i in $(seq 1 200); do
    if python3 - "$1" <<'PY' 2>/dev/null; then return 0; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"PING\r\n")
sys.exit(0 if s.recv(64).startswith(b"+PONG") else 1)
PY
    sleep 0.1
  done
  return 1
}

start_server() { # kind port: starts a fresh server, sets server_pid
  local dir="$work/run/$1"
  rm -rf "$dir" && mkdir -p "$dir"
  case $1 in
    redis) (cd "$dir" && exec "$REDIS_SERVER" --port "$2" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir") \
             >"$dir/server.log" 2>&1 & ;;
    tandem) (cd "$dir" && RUST_LOG=warn exec "$TANDEM_BIN" server --port "$2") >"$dir/server.log" 2>&1 & ;;
  esac
  server_pid=$!
  wait_ready "$2" || return 1
  if [ "$1" = tandem ] && [ -n "${SCRIPTLIMITS:-}" ]; then
    # shellcheck disable=SC2086
    send "$2" TANDEM.SCRIPTLIMITS $SCRIPTLIMITS >/dev/null
  fi
}

stop_server() {
  [ -n "$server_pid" ] || return 0
  kill "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  server_pid=""
}

send() { # port arg…: sends one command, prints the first line of its reply
  python3 - "$@" <<'PY'
import socket, sys
args = [a.encode() for a in sys.argv[2:]]
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
print(s.recv(256).split(b"\r\n")[0].decode(errors="replace"))
PY
}

# Extra runtest flags for BY_DESIGN=1, read from the by-design list.
design_flags=()
design_note=""
if [ "${BY_DESIGN:-0}" = 1 ]; then
  tags="-needs:debug"
  while IFS= read -r line; do
    case $line in
      "tag "*) what=${line#tag }; tags+=" -${what%% -- *}" ;;
      "test "*) what=${line#test }; design_flags+=(--skiptest "${what%% -- *}") ;;
      *) continue ;;
    esac
    design_note+="- left out: ${line%% -- *} (${line#* -- })"$'\n'
  done < bench/redis-suite-by-design.txt
fi

skip_note=""
if [ -n "${SKIP_TESTS:-}" ]; then
  while IFS= read -r name; do
    [ -n "$name" ] || continue
    design_flags+=(--skiptest "$name")
    skip_note+="- left out: test $name (SKIP_TESTS)"$'\n'
  done <<<"$SKIP_TESTS"
fi

run_unit() { # kind unit port → prints "passed failed aborted"
  local log="$LOG_DIR/$2.$1.log"
  mkdir -p "$(dirname "$log")"
  local code
  (cd "$SUITE" && timeout --kill-after=10 "$UNIT_TIMEOUT_S" ./runtest --host 127.0.0.1 --port "$3" --singledb \
    --tags "${tags:--needs:debug}" "${design_flags[@]}" --single "$2" --clients 1 --timeout "$UNIT_TIMEOUT_S" --baseport "$((20000 + RANDOM % 20000))") \
    >"$log" 2>&1
  code=$?
  # Colour codes are only written to terminals, but strip them in case.
  local clean
  clean=$(tr -d '\000' <"$log" | sed 's/\x1b\[[0-9;]*m//g')
  local passed failed aborted=no
  passed=$(grep -c '^\[ok\]:' <<<"$clean")
  failed=$(grep -c '^\[err\]:' <<<"$clean")
  if grep -q '^\[exception\]:' <<<"$clean"; then
    aborted=exception
  elif [ $code -eq 124 ] || [ $code -eq 137 ]; then
    aborted=timeout
  elif ! grep -q '\[1/1 done\]' <<<"$clean"; then
    aborted="no end (exit $code)"
  fi
  echo "$passed|$failed|$aborted"
}

passed_names() { # kind unit: the names of the tests that passed, sorted; a name run several times (once per encoding) is kept each time
  tr -d '\000' <"$LOG_DIR/$2.$1.log" | sed 's/\x1b\[[0-9;]*m//g' | grep '^\[ok\]:' | sed 's/ ([0-9]* ms)$//' | sort
}

declare -A result
for kind in $SERVERS; do
  port=$(free_port)
  if ! start_server "$kind" "$port"; then
    echo "redis-suite: $kind did not answer PING on port $port" >&2
    exit 1
  fi
  stop_server
  for unit in $UNITS; do
    port=$(free_port)
    if ! start_server "$kind" "$port"; then
      result[$kind,$unit]="0|0|server did not start"
      stop_server
      continue
    fi
    result[$kind,$unit]=$(run_unit "$kind" "$unit" "$port")
    stop_server
    echo "  $kind $unit: ${result[$kind,$unit]}" >&2
  done
done

echo "Redis 7.0.15 test suite, external mode (--singledb --tags ${tags:--needs:debug}), one fresh server per unit."
echo "Logs: $LOG_DIR"
[ -n "$design_note" ] && printf '\nBY_DESIGN=1: on both servers\n%s' "$design_note"
[ -n "$skip_note" ] && printf '\nSKIP_TESTS: on both servers\n%s' "$skip_note"
echo
echo "| unit | redis passed | tandem passed | tandem failed | tandem aborted | passed by both | both/redis |"
echo "|---|---|---|---|---|---|---|"
total_r=0
total_t=0
total_b=0
total_f=0
aborted_units=0
for unit in $UNITS; do
  IFS='|' read -r rp _rf ra <<<"${result[redis,$unit]:-0|0|not run}"
  IFS='|' read -r tp tf ta <<<"${result[tandem,$unit]:-0|0|not run}"
  [ "$ra" = no ] || rp="$rp ($ra)"
  both=0
  if [ -n "${result[redis,$unit]:-}" ] && [ -n "${result[tandem,$unit]:-}" ]; then
    both=$(comm -12 <(passed_names redis "$unit") <(passed_names tandem "$unit") | wc -l)
  fi
  ratio=$(python3 -c "import sys; r,b=int(sys.argv[1].split()[0]),int(sys.argv[2]); print(f'{100*b/r:.1f} %' if r else '-')" "$rp" "$both")
  echo "| $unit | $rp | $tp | $tf | $ta | $both | $ratio |"
  total_r=$((total_r + ${rp%% *}))
  total_t=$((total_t + tp))
  total_b=$((total_b + both))
  total_f=$((total_f + tf))
  [ "$ta" = no ] || aborted_units=$((aborted_units + 1))
done
ratio=$(python3 -c "import sys; r,b=int(sys.argv[1]),int(sys.argv[2]); print(f'{100*b/r:.1f} %' if r else '-')" "$total_r" "$total_b")
echo "| **total** | $total_r | $total_t | $total_f | $aborted_units aborted | $total_b | $ratio |"
