#!/bin/sh
# Streaming benchmark (see BENCHMARKS.md). Builds forged and the harness, starts forged
# on a free port with a temporary state directory, runs bench/stream.c, cleans up.
#   bench/stream.sh [BYTES] [ROUNDS]     (default 1 GiB, 10 rounds for time to first byte)
# FORGE_URL=... bench/stream.sh uses an already running forged instead.
set -eu
cd "$(dirname "$0")/.."
. bench/forged.sh
B=${FORGE_BUILD:-build}
make -s all >/dev/null
cc -std=gnu11 -O2 -D_GNU_SOURCE -Iinclude -Isrc bench/stream.c "$B/libforge.a" "$B/libbasic.a" \
        -lcurl -ljansson -lwslay -lcrypto -o "$B/bench-stream"

if [ -z "${FORGE_URL:-}" ]; then
        forged_start --isolator auto
fi
echo "kernel: $(uname -sr), nproc: $(nproc), forged: $FORGE_URL"
"$B/bench-stream" "${1:-1073741824}" "${2:-10}"
