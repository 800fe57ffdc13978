# Sourced by the bench scripts: forged_start [FORGED OPTIONS...] starts forged on a free
# port with a temporary state directory, waits for /health, and exports FORGE_URL and
# FORGE_STATE; forged and its state go when the script exits. Needs $B (the build dir).
forged_start() {
        state=$(mktemp -d /tmp/forge-bench-XXXXXX)
        port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        "$B/bin/forged" --listen "127.0.0.1:$port" --state-dir "$state" --log-level warn "$@" \
                >"$state.log" 2>&1 &
        forged=$!
        trap 'kill $forged 2>/dev/null; wait $forged 2>/dev/null; rm -rf --one-file-system "$state" "$state.log"' EXIT
        export FORGE_URL="http://127.0.0.1:$port" FORGE_STATE="$state"
        i=0
        until curl -sf "$FORGE_URL/health" >/dev/null; do
                i=$((i + 1)); [ $i -lt 200 ] || { echo "forged did not start"; cat "$state.log"; exit 1; }
                sleep 0.05
        done
}
