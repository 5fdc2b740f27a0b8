#!/usr/bin/env bash
# One command for the whole example (examples/README.md): a stripe of three Tandem
# servers, HAProxy in front of it (TCP, clients to mirrors), three instances each of
# the PHP, Node and Python apps, and HAProxy in front of the apps (HTTP round-robin,
# no stickiness, health checks). Ctrl-C stops everything it started.
#
#   bash examples/run.sh                 # ports 7000-7203 (Tandem), 8100-8303 (apps), 8404
#   PORT_BASE=20000 bash examples/run.sh # the same layout moved to 20000+
#   TANDEM=/path/to/tandem bash examples/run.sh
#
# Needs haproxy, php-cli + php-redis, node, python3 + redis-py and the Node app's
# packages: `bash scripts/test-deps.sh` installs them all.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
base=${PORT_BASE:-0}
port() { echo $((base + $1)); }

# The tandem binary: $TANDEM, one on PATH, or a release build of this tree.
if [ -z "${TANDEM:-}" ]; then
  if command -v tandem >/dev/null; then
    TANDEM=$(command -v tandem)
  else
    target=${CARGO_TARGET_DIR:-$root/target}
    [ -x "$target/release/tandem" ] || (cd "$root" && cargo build --release --bin tandem)
    TANDEM=$target/release/tandem
  fi
fi
for p in haproxy php node python3; do
  command -v "$p" >/dev/null || { echo "$p is missing: run bash scripts/test-deps.sh" >&2; exit 1; }
done
[ -d "$root/examples/apps/node/node_modules" ] || { echo "the Node app's packages are missing: run bash scripts/test-deps.sh" >&2; exit 1; }

run=$(mktemp -d "${TMPDIR:-/tmp}/tandem-apps.XXXXXX")
pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "--- stopping (logs stay in $run)"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# Waits until `curl URL` answers 2xx, for at most 30 s.
wait_http() {
  for _ in $(seq 300); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "no answer from $1 (logs in $run)" >&2
  exit 1
}

echo "--- a stripe of three servers in $run"
{
  # The group ports of a stripe of several servers need a shared secret.
  printf '[cluster]\nname = "apps-demo"\nsecret = "%s"\nclient-reconnect-window = "120s"\n\n' "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
  printf '[[stripe]]\nname = "A"\nelection-time = "1s"\n'
  for i in 1 2 3; do
    printf '\n[[stripe.server]]\nname = "server%s"\nhost = "127.0.0.1"\nclient-port = %s\ngroup-port = %s\nmanagement-port = %s\ndata = "data/server%s"\ndata-storage = "256mb"\nrestartable = true\n' \
      "$i" "$(port $((7000 + i)))" "$(port $((7100 + i)))" "$(port $((7200 + i)))" "$i"
  done
} >"$run/tandem.toml"
for i in 1 2 3; do
  (cd "$run" && exec "$TANDEM" server --config tandem.toml --name "server$i") >"$run/server$i.log" 2>&1 &
  pids+=($!)
  echo $! >"$run/server$i.pid"
done
for i in 1 2 3; do wait_http "http://127.0.0.1:$(port $((7200 + i)))/readyz"; done

echo "--- HAProxy: Tandem on $(port 7000) (to mirrors), the apps on $(port 8100) (PHP), $(port 8200) (Node), $(port 8300) (Python)"
{
  printf 'global\n  maxconn 1024\n\ndefaults\n  timeout connect 1s\n  timeout client 60s\n  timeout server 60s\n  timeout check 2s\n\n'
  printf 'frontend tandem\n  mode tcp\n  bind 127.0.0.1:%s\n  default_backend tandem\n' "$(port 7000)"
  printf 'backend tandem\n  mode tcp\n  option httpchk GET /readyz?role=mirror\n  http-check expect status 200\n'
  for i in 1 2 3; do
    printf '  server server%s 127.0.0.1:%s check port %s inter 500 fall 1 rise 2\n' "$i" "$(port $((7000 + i)))" "$(port $((7200 + i)))"
  done
  for app in php:8100 node:8200 python:8300; do
    name=${app%%:*} web=${app##*:}
    printf '\nfrontend %s\n  mode http\n  bind 127.0.0.1:%s\n  default_backend %s\n' "$name" "$(port "$web")" "$name"
    printf 'backend %s\n  mode http\n  balance roundrobin\n  retries 3\n  option redispatch 1\n  option httpchk GET /health\n  http-check expect status 200\n' "$name"
    for i in 1 2 3; do
      printf '  server %s%s 127.0.0.1:%s check inter 1s fall 5 rise 1\n' "$name" "$i" "$(port $((web + i)))"
    done
  done
  printf '\nfrontend stats\n  mode http\n  bind 127.0.0.1:%s\n  stats enable\n  stats uri /\n  stats refresh 2s\n' "$(port 8404)"
} >"$run/haproxy.cfg"
haproxy -db -f "$run/haproxy.cfg" >"$run/haproxy.log" 2>&1 &
pids+=($!)

echo "--- three instances of each app"
tandem_port=$(port 7000)
for i in 1 2 3; do
  TANDEM_HOST=127.0.0.1 TANDEM_PORT=$tandem_port APP_NAME=php$i \
    php -d log_errors=1 -S "127.0.0.1:$(port $((8100 + i)))" "$root/examples/apps/php/index.php" >"$run/php$i.log" 2>&1 &
  pids+=($!)
  TANDEM_URL=redis://127.0.0.1:$tandem_port PORT=$(port $((8200 + i))) APP_NAME=node$i \
    node "$root/examples/apps/node/app.js" >"$run/node$i.log" 2>&1 &
  pids+=($!)
  TANDEM_URL=redis://127.0.0.1:$tandem_port PORT=$(port $((8300 + i))) APP_NAME=python$i \
    python3 "$root/examples/apps/python/app.py" >"$run/python$i.log" 2>&1 &
  pids+=($!)
done
for web in 8100 8200 8300; do
  for i in 1 2 3; do wait_http "http://127.0.0.1:$(port $((web + i)))/health"; done
done

cat <<EOF

Ready. Point a browser at (reload: the counter goes up whichever instance answers):
  PHP     http://127.0.0.1:$(port 8100)/      the shared document: http://127.0.0.1:$(port 8100)/doc
  Node    http://127.0.0.1:$(port 8200)/      members and broadcasts:  http://127.0.0.1:$(port 8200)/members
  Python  http://127.0.0.1:$(port 8300)/
  HAProxy http://127.0.0.1:$(port 8404)/      (which servers are up)
  Tandem  redis-cli -p $(port 7000)            console: http://127.0.0.1:$(port 7201)/
Try:  $TANDEM status --config $run/tandem.toml        (which server is the active)
      kill -9 \$(cat $run/serverN.pid)   (N: the active's number), then reload: nothing is lost;
      then bring it back (it rejoins as a mirror; this script restarts nothing):
      (cd $run && $TANDEM server --config tandem.toml --name serverN)
Ctrl-C stops everything.
EOF
wait
