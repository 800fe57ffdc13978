# Sourced by the qemu bench scripts: their arguments ([URL] [ROUNDS]), the accelerator
# QEMU will use, and the few helpers they time the API with.
set -eu
url=${1:-http://127.0.0.1:3456}
rounds=${2:-5}
accel=tcg
[ -r /dev/kvm ] && [ -w /dev/kvm ] && accel=kvm

now() { date +%s.%N; }
# field EXPR: a value of the JSON document on stdin, EXPR a Python subscript ('["id"]').
field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
post() { curl -sf -X POST "$url$1" -d "$2"; }
