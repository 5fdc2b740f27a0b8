#!/usr/bin/env bash
# Instructions per request, user space, of redis-server and one or two tandem builds,
# counted by valgrind's callgrind: a count that does not move with the machine's load
# or its clock (this VM has no hardware counters, and its timings swing by 2x between
# hours), for telling whether a change to the request path did less work. The kernel's
# share (send, recv, epoll) is not counted; timings stay bench/rotate.sh's job.
#
#   TANDEM_A=<tandem binary> [TANDEM_B=<other tandem binary>] bash bench/instructions.sh
#
# ROWS: "test clients pipeline requests" entries (default below). Each server starts
# under callgrind (`--save "" --appendonly no` for Redis, the development topology for
# tandem), takes a warm-up run, has its counters zeroed, serves the measured run,
# and is dumped; the figure is the dump's total divided by the requests. Under
# callgrind a server runs ~50x slower, so at 50 clients it gathers more writes per
# Raft entry than at full speed: the rows with many clients favour tandem a little.
# Columns: instructions per request; a/redis, b/redis, b/a are their ratios (lower is
# less work). The test `evalsha` loads `return redis.call('incr', KEYS[1])` with
# SCRIPT LOAD and runs it by EVALSHA over 100,000 keys (bench/scripting.sh's row).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${TANDEM_A:?set TANDEM_A to a tandem binary}"
TANDEM_B=${TANDEM_B:-}
PORT=${PORT:-9731}
ROWS=${ROWS:-"set 1 1 20000;get 1 1 20000;set 50 1 100000;set 50 16 200000;incr 50 16 200000;lpush 50 16 200000;hset 50 16 200000"}
command -v valgrind >/dev/null || { echo "valgrind is required (apt-get install valgrind)" >&2; exit 1; }
if redis-cli -p "$PORT" ping >/dev/null 2>&1; then echo "port $PORT is in use" >&2; exit 1; fi

work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The self cost of every function in a callgrind dump, summed: the dump's total.
total() {
  python3 - "$1" <<'PY'
import sys
total, skip = 0, False
for line in open(sys.argv[1], errors="replace"):
    if line.startswith("calls="):
        skip = True  # the next cost line is a call's inclusive cost
        continue
    if line[:1].isdigit() or line[:1] in "+-*":
        parts = line.split()
        if len(parts) >= 2:
            if skip:
                skip = False
            else:
                total += int(parts[1])
print(total)
PY
}

measure() { # name binary test clients pipeline requests -> instructions per request
  local name=$1 bin=$2 t=$3 c=$4 p=$5 n=$6 out="$work/$1.$3.$4.$5"
  mkdir -p "$work/dir"
  if [ "$name" = redis ]; then
    (cd "$work/dir" && exec valgrind --tool=callgrind --callgrind-out-file="$out" redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no) >"$work/log" 2>&1 &
  else
    (cd "$work/dir" && RUST_LOG=warn exec valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" server --port "$PORT") >"$work/log" 2>&1 &
  fi
  pid=$!
  local ok=
  for _ in $(seq 1 600); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && { ok=1; break; }; sleep 0.1; done
  [ -n "$ok" ] || { echo "$name did not start under valgrind" >&2; cat "$work/log" >&2; exit 1; }
  local what=(-t "$t")
  if [ "$t" = evalsha ]; then
    local sha
    sha=$(redis-cli -p "$PORT" script load "return redis.call('incr', KEYS[1])")
    what=(evalsha "$sha" 1 "key:__rand_int__")
  fi
  redis-benchmark -p "$PORT" -c "$c" -n $((n / 10)) -P "$p" -r 100000 -q "${what[@]}" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  redis-benchmark -p "$PORT" -c "$c" -n "$n" -P "$p" -r 100000 -q "${what[@]}" >/dev/null
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  rm -rf "$work/dir"
  # The dump taken on request is the file's ".1" part; the one at exit is left out.
  echo $(($(total "$out.1") / n))
}

servers=("redis:redis" "a:$TANDEM_A")
[ -n "$TANDEM_B" ] && servers+=("b:$TANDEM_B")
header="| test | clients | pipeline | redis |"; rule="|---|---|---|---|"
header+=" a | a/redis |"; rule+="---|---|"
[ -n "$TANDEM_B" ] && { header+=" b | b/redis | b/a |"; rule+="---|---|---|"; }
echo "$header"; echo "$rule"
IFS=';' read -ra rows <<<"$ROWS"
for row in "${rows[@]}"; do
  read -r t c p n <<<"$row"
  declare -A per=()
  for s in "${servers[@]}"; do per[${s%%:*}]=$(measure "${s%%:*}" "${s#*:}" "$t" "$c" "$p" "$n"); done
  line="| ${t^^} | $c | $p | ${per[redis]} | ${per[a]} | $(python3 -c "print(f'{${per[a]}/${per[redis]}:.2f}')") |"
  if [ -n "$TANDEM_B" ]; then
    line+=" ${per[b]} | $(python3 -c "print(f'{${per[b]}/${per[redis]}:.2f} | {${per[b]}/${per[a]}:.2f}')") |"
  fi
  echo "$line"
  unset per
done
