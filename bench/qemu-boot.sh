#!/bin/sh
# Boot time of a qemu-isolator sandbox against an ns sandbox created in the same run
# (BENCHMARKS.md: absolute times on shared machines are noise). Each round times
# POST /v1/sandboxes until its 201 (for qemu: QEMU started, guest booted, forge-agent
# greeted) and the first shell call after it, then destroys the sandbox. Needs a
# running forged whose state dir has the guest parts (forgectl vm setup). The
# accelerator is KVM when /dev/kvm opens, TCG otherwise (forged logs which it used).
#
# usage: bench/qemu-boot.sh [URL] [ROUNDS]
set -eu
url=${1:-http://127.0.0.1:3456}
rounds=${2:-5}
accel=tcg
[ -r /dev/kvm ] && [ -w /dev/kvm ] && accel=kvm

now() { date +%s.%N; }

# Prints "create_seconds first_shell_seconds" for one sandbox of isolator $1.
one() {
        t0=$(now)
        id=$(curl -sf -X POST "$url/v1/sandboxes" -d "{\"isolator\":\"$1\"}" |
                python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
        t1=$(now)
        curl -sf -X POST "$url/v1/sandboxes/$id/shell" -d '{"command":"true"}' >/dev/null
        t2=$(now)
        curl -sf -X DELETE "$url/v1/sandboxes/$id" >/dev/null
        echo "$t0 $t1 $t2" | awk '{ printf "%.3f %.3f\n", $2 - $1, $3 - $2 }'
}

echo "machine: $(nproc) CPUs, $(uname -r), accelerator $accel, $rounds rounds"
i=0
while [ "$i" -lt "$rounds" ]; do
        q=$(one qemu)
        n=$(one ns)
        echo "$q $n" | awk '{ printf "qemu create %.2f s + first shell %.2f s | ns create %.2f s + first shell %.2f s | ratio %.0fx\n", $1, $2, $3, $4, ($1 + $2) / ($3 + $4) }'
        i=$((i + 1))
done
