#!/usr/bin/env bash
# Where tandem's time goes under redis-benchmark: perf samples of the server while
# it serves TEST (default SET) with -c 50 -P PIPELINE (default 16); prints the top
# symbols (self time). Needs perf (Debian: linux-perf).
#
#   bash bench/profile.sh                 # SET, -P 16
#   TEST=get PIPELINE=1 bash bench/profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TEST=${TEST:-set}; PIPELINE=${PIPELINE:-16}; PORT=${PORT:-9613}
command -v perf >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null; }
command -v redis-benchmark >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools >/dev/null; }
cargo build --release --quiet
work=$(mktemp -d)
(cd "$work" && RUST_LOG=warn exec "$OLDPWD/target/release/tandem" server --port "$PORT") >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 200); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
perf record -F 999 -g -p "$pid" -o "$work/perf.data" -- sleep 6 >/dev/null 2>&1 &
rec=$!
sleep 0.3
redis-benchmark -p "$PORT" -c 50 -n 2000000 -P "$PIPELINE" -t "$TEST" -r 100000 -q >/dev/null 2>&1 &
bench=$!
wait "$rec"; kill "$bench" 2>/dev/null || true
perf report -i "$work/perf.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]+\.[0-9]+%' | head -25
