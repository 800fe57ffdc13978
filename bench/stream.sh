#!/bin/sh
# Streaming benchmark (see BENCHMARKS.md). Builds forged and the harness, starts forged
# on a free port with a temporary state directory, runs bench/stream.c, cleans up.
#   bench/stream.sh [BYTES] [ROUNDS]     (default 1 GiB, 10 rounds for time to first byte)
# FORGE_URL=... bench/stream.sh uses an already running forged instead.
set -eu
cd "$(dirname "$0")/.."
B=${FORGE_BUILD:-build}
make -s all >/dev/null
cc -std=gnu11 -O2 -D_GNU_SOURCE -Iinclude -Isrc bench/stream.c "$B/libforge.a" "$B/libbasic.a" \
        -lcurl -ljansson -lwslay -lcrypto -o "$B/bench-stream"

if [ -z "${FORGE_URL:-}" ]; then
        state=$(mktemp -d /tmp/forge-bench-XXXXXX)
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        "$B/bin/forged" --listen "127.0.0.1:$port" --state-dir "$state" --isolator auto \
                --log-level warn >"$state.log" 2>&1 &
        forged=$!
        trap 'kill $forged 2>/dev/null; wait $forged 2>/dev/null; rm -rf --one-file-system "$state" "$state.log"' EXIT
        export FORGE_URL="http://127.0.0.1:$port"
        i=0
        until curl -sf "$FORGE_URL/health" >/dev/null; do
                i=$((i + 1)); [ $i -lt 200 ] || { echo "forged did not start"; cat "$state.log"; exit 1; }
                sleep 0.05
        done
fi
echo "kernel: $(uname -sr), nproc: $(nproc), forged: $FORGE_URL"
"$B/bench-stream" "${1:-1073741824}" "${2:-10}"
