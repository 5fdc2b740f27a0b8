#!/usr/bin/env bash
# TLS and ACL throughput, tandem vs redis-server, same machine, same run, same
# redis-benchmark (issue 15's benchmark):
#
#   bash bench/tls.sh
#   REQUESTS=100000 ROUNDS=1 bash bench/tls.sh
#
# Both servers hold their data in memory only (redis-server: no RDB, no AOF; tandem: a
# lone in-memory server, the development topology) and serve a TLS port with the same
# certificate (a CA and a server certificate made here with openssl; clients are not
# asked for one, tls-auth-clients no). Rows:
#   - SET and GET over TLS at -P 1 and -P 16 (-c 50, 100,000 random keys);
#   - SET and GET over the plain port as an ACL user with key patterns
#     (~key:* ~counter:* +@all) against the default user, at -P 1 and -P 16;
#   - (GROUP=1, the default) the cost of mutual TLS on the group ports: a stripe of
#     three restartable servers, plain group ports against tls-group, SET at -P 1
#     and -P 16 sent to the active (each write replicated to a majority and fsynced).
# Each row runs ROUNDS times (default 3), redis and tandem alternating, and prints the
# median requests/s of each and their ratio tandem/redis (above 1: tandem faster).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-200000}
ROUNDS=${ROUNDS:-3}
REDIS_PORT=${REDIS_PORT:-6491}
REDIS_TLS_PORT=${REDIS_TLS_PORT:-6492}
TANDEM_PORT=${TANDEM_PORT:-9661}
TANDEM_TLS_PORT=${TANDEM_TLS_PORT:-9662}
TANDEM_GROUP_PORT=${TANDEM_GROUP_PORT:-9663}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi
if [ -z "${TANDEM_BIN:-}" ]; then
  cargo build --release --quiet
  TANDEM_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/tandem
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if declare -F stop_members >/dev/null; then stop_members; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for port in "$REDIS_PORT" "$REDIS_TLS_PORT" "$TANDEM_PORT" "$TANDEM_TLS_PORT"; do
  if redis-cli -p "$port" ping >/dev/null 2>&1 || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use: set REDIS_PORT, REDIS_TLS_PORT, TANDEM_PORT, TANDEM_TLS_PORT" >&2
    exit 1
  fi
done

# A CA and a server certificate for 127.0.0.1, EC P-256 (what both servers present).
(
  cd "$work"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench-ca -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=bench -keyout server.key -out server.csr 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
  openssl x509 -req -days 2 -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -extfile server.ext -out server.crt 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=member -keyout member.key -out member.csr 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >member.ext
  openssl x509 -req -days 2 -in member.csr -CA ca.crt -CAkey ca.key -CAcreateserial -extfile member.ext -out member.crt 2>/dev/null
)

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  --tls-port "$REDIS_TLS_PORT" --tls-cert-file "$work/server.crt" --tls-key-file "$work/server.key" \
  --tls-ca-cert-file "$work/ca.crt" --tls-auth-clients no --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)

cat >"$work/tandem.toml" <<EOF
[cluster]
name = "bench"
tls-cert-file = "$work/server.crt"
tls-key-file = "$work/server.key"
tls-ca-cert-file = "$work/ca.crt"
tls-auth-clients = "no"

[[stripe]]
name = "A"

[[stripe.server]]
name = "server1"
host = "127.0.0.1"
client-port = $TANDEM_PORT
tls-port = $TANDEM_TLS_PORT
group-port = $TANDEM_GROUP_PORT
management-port = 0
data = "$work/data"
restartable = false
EOF
(cd "$work" && RUST_LOG=warn exec "$TANDEM_BIN" server --config "$work/tandem.toml" --name server1) >"$work/tandem.log" 2>&1 &
pids+=($!)

wait_ready() {
  for _ in $(seq 1 200); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "server on port $1 did not start:" >&2; cat "$work"/*.log >&2; exit 1
}
wait_ready "$REDIS_PORT"; wait_ready "$TANDEM_PORT"

# The ACL user the ACL rows log in as, on both servers (through their plain ports).
for port in "$REDIS_PORT" "$TANDEM_PORT"; do
  redis-cli -p "$port" acl setuser bench on '>bench-password' '~key:*' '~counter:*' '+@all' >/dev/null
done

rps() { # port test pipeline extra-args…: requests/s of one redis-benchmark test
  local port=$1 test=$2 pipeline=$3; shift 3
  redis-benchmark -p "$port" -c 50 -n "$REQUESTS" -P "$pipeline" -t "$test" -r 100000 -q --csv "$@" 2>/dev/null \
    | awk -F'","' -v want="${test^^}" '{gsub(/"/,"",$1); gsub(/"/,"",$2); if (toupper($1) ~ "^" want) {print $2; exit}}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
row() { # label test pipeline redis-port tandem-port extra-args…
  local label=$1 test=$2 pipeline=$3 rport=$4 tport=$5; shift 5
  local r=() t=()
  for _ in $(seq 1 "$ROUNDS"); do
    r+=("$(rps "$rport" "$test" "$pipeline" "$@")")
    t+=("$(rps "$tport" "$test" "$pipeline" "$@")")
  done
  local rm tm
  rm=$(median "${r[@]}"); tm=$(median "${t[@]}")
  echo "| $label | ${test^^} | $pipeline | $rm | $tm | $(python3 -c "print(f'{float($tm)/float($rm):.2f}')") |"
}

tls=(--tls --cacert "$work/ca.crt")
acl=(--user bench -a bench-password)
echo "| connection | test | pipeline | redis rps | tandem rps | tandem/redis |"
echo "|---|---|---|---|---|---|"
for p in 1 16; do
  for t in set get; do
    row "TLS" "$t" "$p" "$REDIS_TLS_PORT" "$TANDEM_TLS_PORT" "${tls[@]}"
  done
done
for p in 1 16; do
  for t in set get; do
    row "plain, default user" "$t" "$p" "$REDIS_PORT" "$TANDEM_PORT"
    row "plain, ACL user with key patterns" "$t" "$p" "$REDIS_PORT" "$TANDEM_PORT" "${acl[@]}"
  done
done

[ "${GROUP:-1}" = 1 ] || exit 0
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()

bin=$TANDEM_BIN
BASE_PORT=${BASE_PORT:-9760}
T_CLIENT=($((BASE_PORT)) $((BASE_PORT + 1)) $((BASE_PORT + 2)))
T_GROUP=($((BASE_PORT + 3)) $((BASE_PORT + 4)) $((BASE_PORT + 5)))
T_MGMT=($((BASE_PORT + 6)) $((BASE_PORT + 7)) $((BASE_PORT + 8)))
source bench/stripe_lib.sh
stripe_rps() { # mode test pipeline: requests/s of SETs on the active of a fresh stripe
  local mode=$1 test=$2 pipeline=$3
  stop_members
  rm -rf "$work"/server* "$work"/*.pid
  stripe_config 3 0 1s
  if [ "$mode" = tls ]; then
    sed -i "s|^secret = \"bench-secret\"|secret = \"bench-secret\"\ntls-group = true\ntls-cert-file = \"$work/member.crt\"\ntls-key-file = \"$work/member.key\"\ntls-ca-cert-file = \"$work/ca.crt\"|" "$conf"
  fi
  for n in server1 server2 server3; do start_member "$n"; done
  wait_whole 60
  rps "$(client_port "$(active_server)")" "$test" "$pipeline"
}
echo
echo "| stripe of 3, restartable | test | pipeline | plain group ports rps | tls-group rps | tls/plain |"
echo "|---|---|---|---|---|---|"
for p in 1 16; do
  plain=(); tls=()
  for _ in $(seq 1 "$ROUNDS"); do
    plain+=("$(stripe_rps plain set "$p")")
    tls+=("$(stripe_rps tls set "$p")")
  done
  pm=$(median "${plain[@]}"); tm=$(median "${tls[@]}")
  echo "| group ports | SET | $p | $pm | $tm | $(python3 -c "print(f'{float($tm)/float($pm):.2f}')") |"
done
stop_members
