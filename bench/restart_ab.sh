#!/usr/bin/env bash
# Restart time of two builds on the same data directory, alternated pair by pair:
# one restartable server is filled with KEYS keys × 100 B (bench/load.py) and saved,
# then each round starts build A and build B in turn on it, polls PING until PONG,
# and kills it with -9. Prints, per build, the time to first PONG and the snapshot
# load (from the server's "log opened" to "snapshot loaded" log lines), and the
# medians with the median of the per-pair ratios B/A.
#   TANDEM_A=<tandem> TANDEM_B=<tandem> [KEYS=3000000] [PAIRS=8] bash bench/restart_ab.sh
set -euo pipefail
KEYS=${KEYS:-3000000}
PAIRS=${PAIRS:-8}
PORT=${PORT:-9712}
: "${TANDEM_A:?the build before}" "${TANDEM_B:?the build after}"
command -v redis-cli >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools >/dev/null; }

if redis-cli -p "$PORT" ping >/dev/null 2>&1; then echo "port $PORT is already in use: stop that server first" >&2; exit 1; fi
work=$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")
pid=""
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cat >"$work/tandem.toml" <<TOML
[cluster]
name = "restart-ab"

[[stripe]]
name = "A"

[[stripe.server]]
name = "server1"
host = "127.0.0.1"
client-port = $PORT
group-port = $((PORT + 20))
management-port = $((PORT + 30))
data = "$work/data"
data-storage = "16gb"
restartable = true
TOML

start() { # bin: starts it, waits for PONG; the seconds it took go in $elapsed
  # (not run in $(...): the server's pid must stay in this shell for stop and cleanup)
  local t0; t0=$(date +%s.%N)
  RUST_LOG=info,openraft=warn "$1" server --config "$work/tandem.toml" --name server1 >"$work/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 20000); do
    [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = PONG ] && break
    kill -0 "$pid" 2>/dev/null || { echo "the server stopped:" >&2; tail -5 "$work/log" >&2; exit 1; }
    sleep 0.01
  done
  elapsed=$(python3 -c "import time; print(f'{time.time() - $t0:.3f}')")
}
stop() { kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
load_seconds() { # from the log of the last start
  python3 - "$work/log" <<'PY'
import datetime, re, sys
at = {}
for line in open(sys.argv[1]):
    m = re.search(r'T(\d\d:\d\d:\d\d\.\d{6})', line)
    for mark in ("log opened", "snapshot loaded"):
        if m and mark in line:
            at[mark] = datetime.datetime.strptime(m.group(1), '%H:%M:%S.%f')
print(f"{(at['snapshot loaded'] - at['log opened']).total_seconds():.3f}" if len(at) == 2 else "nan")
PY
}

start "$TANDEM_B"
python3 bench/load.py "$KEYS" | redis-cli -p "$PORT" --pipe 2>&1 | tail -1
redis-cli -p "$PORT" save >/dev/null
stop
echo "snapshot: $(du -cb "$work"/data/snapshots/*.snap | tail -1 | cut -f1) bytes, $KEYS keys"
echo "| pair | A PONG (s) | A load (s) | B PONG (s) | B load (s) |"
echo "|---|---|---|---|---|"
rows=()
for i in $(seq 1 "$PAIRS"); do
  start "$TANDEM_A"; ap=$elapsed; stop; al=$(load_seconds)
  start "$TANDEM_B"; bp=$elapsed; stop; bl=$(load_seconds)
  echo "| $i | $ap | $al | $bp | $bl |"
  rows+=("$ap $al $bp $bl")
done
printf '%s\n' "${rows[@]}" | python3 -c '
import statistics, sys
r = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
med = lambda xs: statistics.median(xs)
for name, a, b in (("PONG", 0, 2), ("load", 1, 3)):
    print(f"{name}: A median {med([x[a] for x in r]):.3f}, B median {med([x[b] for x in r]):.3f}, "
          f"B/A median of pairs {med([x[b] / x[a] for x in r]):.2f}")
'
