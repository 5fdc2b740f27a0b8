#!/usr/bin/env bash
# Throughput of redis-server and one or two tandem builds, measured in rotation:
# every round runs each row once on every server, in an order that changes from round
# to round, so that a burst of load on the machine falls on all servers alike. Prints,
# per row, the median requests/s of each server over the rounds and the ratios of the
# medians, plus the median of the per-round ratios (the figure to read on a noisy
# machine: both sides of each ratio ran seconds apart).
#
#   TANDEM_A=<tandem binary> [TANDEM_B=<other tandem binary>] ROUNDS=7 bash bench/rotate.sh
#
# ROWS (default "set get incr lpush hset"; also any redis-benchmark test, and xadd,
# bitcount, pfadd as bench/compare.sh runs them), PIPELINES (default "1 16"), REQUESTS
# (default 200000) select what runs. Servers: redis-server --save "" --appendonly no
# and `tandem server` (development topology), as bench/compare.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-7}
REQUESTS=${REQUESTS:-200000}
ROWS=${ROWS:-"set get incr lpush hset"}
PIPELINES=${PIPELINES:-"1 16"}
: "${TANDEM_A:?set TANDEM_A to a tandem binary}"
TANDEM_B=${TANDEM_B:-}
REDIS_PORT=${REDIS_PORT:-6393}
A_PORT=${A_PORT:-9613}
B_PORT=${B_PORT:-9614}

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
start_tandem() { # binary port name
  mkdir -p "$work/$3"
  (cd "$work/$3" && RUST_LOG=warn exec "$1" server --port "$2") >"$work/$3.log" 2>&1 &
  pids+=($!)
}
servers=("redis:$REDIS_PORT")
start_tandem "$TANDEM_A" "$A_PORT" a; servers+=("a:$A_PORT")
if [ -n "$TANDEM_B" ]; then start_tandem "$TANDEM_B" "$B_PORT" b; servers+=("b:$B_PORT"); fi
for s in "${servers[@]}"; do
  port=${s#*:}; ok=
  for _ in $(seq 1 200); do redis-cli -p "$port" ping >/dev/null 2>&1 && { ok=1; break; }; sleep 0.05; done
  [ -n "$ok" ] || { echo "server on port $port did not start" >&2; exit 1; }
done

rps() { # port test pipeline: the row named after the test (LRANGE_* rows come after
  # redis-benchmark's LPUSH that fills the list, which must not be read instead).
  # xadd, bitcount and pfadd are bench/compare.sh's custom rows, run the same way.
  local custom=()
  case $2 in
    xadd) custom=(XADD mystream "*" myfield "value-__rand_int__") ;;
    bitcount) custom=(BITCOUNT bitcount:key) ;;
    pfadd) custom=(PFADD pfadd:key __rand_int__) ;;
  esac
  if [ ${#custom[@]} -gt 0 ]; then
    redis-benchmark -p "$1" -c 50 -n "$REQUESTS" -P "$3" -r 100000 -q --csv "${custom[@]}" 2>/dev/null |
      awk -F'","' '{gsub(/"/,"",$2); if ($2 ~ /^[0-9.]+$/) {print $2; exit}}'
    return
  fi
  redis-benchmark -p "$1" -c 50 -n "$REQUESTS" -P "$3" -t "$2" -r 100000 -q --csv 2>/dev/null |
    awk -F'","' -v want="${2^^}" '{gsub(/"/,"",$1); gsub(/"/,"",$2); if (toupper($1) ~ "^" want) {print $2; exit}}'
}
# BITCOUNT's row counts the bits of a 1 KB string, as bench/compare.sh's does.
payload=$(python3 -c "import random; random.seed(7); print(''.join(random.choice('abcdefghij') for _ in range(1024)))")
for s in "${servers[@]}"; do redis-cli -p "${s#*:}" set bitcount:key "$payload" >/dev/null; done

raw="$work/raw.tsv" # round row pipeline server rps
n=${#servers[@]}
for round in $(seq 1 "$ROUNDS"); do
  for p in $PIPELINES; do
    for t in $ROWS; do
      for i in $(seq 0 $((n - 1))); do
        s=${servers[$(((i + round) % n))]}
        echo -e "$round\t$t\t$p\t${s%%:*}\t$(rps "${s#*:}" "$t" "$p")" >>"$raw"
      done
    done
  done
  echo "round $round of $ROUNDS done" >&2
done

python3 - "$raw" "$n" <<'PY'
import sys, statistics as st
from collections import defaultdict
rows = defaultdict(lambda: defaultdict(dict))
for line in open(sys.argv[1]):
    rnd, t, p, s, v = line.rstrip("\n").split("\t")
    rows[(t, int(p))][s][int(rnd)] = float(v)
names = ["a", "b"][: int(sys.argv[2]) - 1]
cols = ["test", "pipeline", "redis median"]
for x in names:
    cols += [f"{x} median", f"{x}/redis (medians)", f"{x}/redis (median of rounds)"]
if len(names) == 2:
    cols.append("b/a (median of rounds)")
print("| " + " | ".join(cols) + " |")
print("|" + "---|" * len(cols))
for (t, p) in sorted(rows, key=lambda k: (k[1], k[0])):
    r = rows[(t, p)]
    rm = st.median(r["redis"].values())
    cells = [t.upper(), str(p), f"{rm:,.0f}"]
    for x in names:
        xm = st.median(r[x].values())
        per = st.median(r[x][k] / r["redis"][k] for k in r[x])
        cells += [f"{xm:,.0f}", f"{xm / rm:.2f}", f"{per:.2f}"]
    if len(names) == 2:
        cells.append(f"{st.median(r['b'][k] / r['a'][k] for k in r['b']):.2f}")
    print("| " + " | ".join(cells) + " |")
PY
