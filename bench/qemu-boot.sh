#!/bin/sh
# Boot time of a qemu-isolator sandbox, cold and from a memory snapshot, against an ns
# sandbox created in the same run (BENCHMARKS.md: absolute times on shared machines are
# noise). Each round times POST /v1/sandboxes until its 201 (for qemu: QEMU started, the
# guest booted or its saved machine loaded, forge-agent greeted) and the first shell
# call after it, then destroys the sandbox, so one VM runs at a time.
#
# The snapshot is taken once, before the rounds, of a VM that ran python and keeps a
# background process: what an agent's sandbox looks like after a first command. The
# accelerator is KVM when /dev/kvm opens, TCG otherwise (forged logs which it used).
# Needs a running forged whose state dir has the guest parts (forgectl vm setup).
#
# usage: bench/qemu-boot.sh [URL] [ROUNDS]
. "$(dirname "$0")/qemu-common.sh"

# Prints "create_seconds first_shell_seconds" for one sandbox made from the body $1.
one() {
        t0=$(now)
        id=$(post /v1/sandboxes "$1" | field '["id"]')
        t1=$(now)
        post "/v1/sandboxes/$id/shell" '{"command":"true"}' >/dev/null
        t2=$(now)
        curl -sf -X DELETE "$url/v1/sandboxes/$id" >/dev/null
        echo "$t0 $t1 $t2" | awk '{ printf "%.3f %.3f\n", $2 - $1, $3 - $2 }'
}

src=$(post /v1/sandboxes '{"isolator":"qemu"}' | field '["id"]')
post "/v1/sandboxes/$src/execute" '{"code":"print(sum(range(10**6)))","runtime":"python"}' >/dev/null
post "/v1/sandboxes/$src/processes" '{"command":"sleep 86400"}' >/dev/null
t0=$(now)
snap=$(post "/v1/sandboxes/$src/snapshot" '{}')
t1=$(now)
curl -sf -X DELETE "$url/v1/sandboxes/$src" >/dev/null
snap_id=$(echo "$snap" | field '["id"]')
echo "machine: $(nproc) CPUs, $(uname -r), accelerator $accel, $rounds rounds"
echo "$snap" | python3 -c "import json, sys; s = json.load(sys.stdin); print('snapshot: %s MiB on disk (memory %s MiB), saved in %.2f s' % (round(s['size_bytes'] / 2**20), s['memory_mb'], $t1 - $t0))"

out=$(mktemp)
i=0
while [ "$i" -lt "$rounds" ]; do
        q=$(one '{"isolator":"qemu"}')
        s=$(one "{\"from_snapshot\":\"$snap_id\"}")
        n=$(one '{"isolator":"ns"}')
        echo "$q $s $n" | tee -a "$out" | awk '{
                printf "qemu cold %.2f s + shell %.2f s | qemu from snapshot %.2f s + shell %.2f s | ns %.2f s + shell %.2f s\n",
                        $1, $2, $3, $4, $5, $6 }'
        i=$((i + 1))
done
curl -sf -X DELETE "$url/v1/snapshots/$snap_id" >/dev/null
# Medians of each column, and the ratios that matter.
for c in 1 2 3 4 5 6; do
        sort -n -k"$c","$c" "$out" | awk -v c="$c" '{ v[NR] = $c } END { printf "%s ", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
done | awk '{
        printf "median: qemu cold %.2f s + %.2f s, from snapshot %.2f s + %.2f s, ns %.2f s + %.2f s\n", $1, $2, $3, $4, $5, $6
        printf "ratios (create + first shell): snapshot / cold boot %.2fx, cold boot / ns %.1fx, snapshot / ns %.1fx\n",
                ($3 + $4) / ($1 + $2), ($1 + $2) / ($5 + $6), ($3 + $4) / ($5 + $6) }'
rm -f "$out"
