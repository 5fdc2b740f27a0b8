#!/usr/bin/env bash
# The README's test command: installs what the end-to-end tests need, then runs every
# test (unit, wire, hostile input, HA clusters, end to end with real clients).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
echo "--- cargo test"
cargo test "$@"
echo "--- cargo test: crates/base2histogram (openraft's histograms, our own: see Cargo.toml's [patch])"
CARGO_TARGET_DIR=target cargo test --manifest-path crates/base2histogram/Cargo.toml
