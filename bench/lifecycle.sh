#!/bin/sh
# Lifecycle benchmark (see BENCHMARKS.md): starts forged with a warm pool on a free port
# and a temporary state directory, runs bench/lifecycle.py against it, cleans up.
#   ROUNDS=15 BURST=50 POOL=2 bench/lifecycle.sh
set -eu
cd "$(dirname "$0")/.."
. bench/forged.sh
B=${FORGE_BUILD:-build}
POOL=${POOL:-2}
make -s all >/dev/null
forged_start --pool "$POOL" --max-sandboxes 128
export POOL
/usr/bin/python3 bench/lifecycle.py
