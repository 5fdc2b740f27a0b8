#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain: real peers and clients that
# the end-to-end tests drive (Debian packages, PyPI and npm). Idempotent: a second run
# installs nothing. Each list says which tests need it; add to the lists, keep them short.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages.
#   redis-server, redis-tools: the peer for side-by-side tests and benchmarks.
#   php-cli, php-redis, haproxy: PHP session handlers behind a load balancer (end-to-end tests,
#     the example apps of examples/ behind HAProxy: tests/apps_e2e.rs);
#     haproxy also health-checks /readyz in tests/management_haproxy.rs.
#   prometheus: its promtool checks a live /metrics scrape (tests/management_http.rs).
#   chromium, chromium-driver: the console in a headless browser (tests/management_console.rs).
#   systemd: its systemd-analyze verifies the units in examples/systemd/ (tests/examples.rs).
#   curl (and redis-tools' redis-cli): commands of docs/operations.md, which tests/docs_operations.rs runs.
APT_PACKAGES=(redis-server redis-tools php-cli php-redis haproxy prometheus chromium chromium-driver systemd curl)

# npm packages (tests/node/package.json, versions pinned by its package-lock.json):
#   ioredis, redis (node-redis): slot-routing cluster clients in tests/cluster_protocol.rs.
#   express, express-session, connect-redis, redis: the example Node app (examples/apps/node/package.json,
#     its own package-lock.json), run by tests/apps_e2e.rs and examples/run.sh.
# Node itself comes from Debian when missing.
command -v node >/dev/null && command -v npm >/dev/null || APT_PACKAGES+=(nodejs npm)

# PyPI packages, installed for the python3 on PATH.
#   redis: redis-py (Lock, RedisCluster, client-side caching) in end-to-end tests, and the
#     example Python app (examples/apps/python).
PIP_PACKAGES=("redis==5.2.1")

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "--- apt-get install ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packaged redis-server starts a service on 6379, prometheus one on 9090; the
  # tests start their own and need neither.
  $SUDO systemctl stop redis-server >/dev/null 2>&1 || $SUDO service redis-server stop >/dev/null 2>&1 || true
  $SUDO systemctl stop prometheus >/dev/null 2>&1 || $SUDO service prometheus stop >/dev/null 2>&1 || true
fi

for p in "${PIP_PACKAGES[@]}"; do
  name=${p%%==*}
  want=${p#*==}
  have=$(python3 -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)
  if [ "$have" != "$want" ]; then
    echo "--- pip install $p"
    python3 -m pip install -q --disable-pip-version-check "$p"
  fi
done

if [ ! -d tests/node/node_modules/ioredis ] || [ ! -d tests/node/node_modules/redis ] || [ tests/node/package-lock.json -nt tests/node/node_modules ]; then
  echo "--- npm ci (tests/node)"
  npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
fi
if [ ! -d examples/apps/node/node_modules/connect-redis ] || [ examples/apps/node/package-lock.json -nt examples/apps/node/node_modules ]; then
  echo "--- npm ci (examples/apps/node)"
  npm ci --prefix examples/apps/node --no-audit --no-fund --loglevel=error
fi
