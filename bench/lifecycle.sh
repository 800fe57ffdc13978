#!/bin/sh
# Lifecycle benchmark (see BENCHMARKS.md): starts forged with a warm pool on a free port
# and a temporary state directory, runs bench/lifecycle.py against it, cleans up.
#   ROUNDS=15 BURST=50 POOL=2 bench/lifecycle.sh
set -eu
cd "$(dirname "$0")/.."
B=${FORGE_BUILD:-build}
POOL=${POOL:-2}
make -s all >/dev/null
state=$(mktemp -d /tmp/forge-bench-XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$B/bin/forged" --listen "127.0.0.1:$port" --state-dir "$state" --pool "$POOL" --max-sandboxes 128 \
        --log-level warn >"$state.log" 2>&1 &
forged=$!
trap 'kill $forged 2>/dev/null; wait $forged 2>/dev/null; rm -rf --one-file-system "$state" "$state.log"' EXIT
export FORGE_URL="http://127.0.0.1:$port" FORGE_STATE="$state" POOL
i=0
until curl -sf "$FORGE_URL/health" >/dev/null; do
        i=$((i + 1)); [ $i -lt 200 ] || { echo "forged did not start"; cat "$state.log"; exit 1; }
        sleep 0.05
done
/usr/bin/python3 bench/lifecycle.py
