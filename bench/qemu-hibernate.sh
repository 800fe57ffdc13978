#!/bin/sh
# Hibernation of a qemu-isolator sandbox against the two peers it sits between, in the
# same run (BENCHMARKS.md: absolute times on shared machines are noise): a plain suspend
# (the VM paused, its memory held) and a cold boot. One VM that ran python and keeps a
# background process is hibernated and woken each round: the time of POST .../suspend
# {"hibernate": true} until its 200, the host memory its cgroup holds before and after,
# and the first shell call after it (which loads the machine). Then the same VM is
# suspended and its first shell call timed, and a fresh VM is booted and its first shell
# call timed. The accelerator is KVM when /dev/kvm opens, TCG otherwise.
# Needs a running forged whose state dir has the guest parts (forgectl vm setup).
#
# usage: bench/qemu-hibernate.sh [URL] [ROUNDS]
. "$(dirname "$0")/qemu-common.sh"
mem_mib() { curl -sf "$url/v1/sandboxes/$1" | field '["usage"]["memory_bytes"] // 2**20'; }
shell() { post "/v1/sandboxes/$1/shell" '{"command":"true"}' >/dev/null; }

vm=$(post /v1/sandboxes '{"isolator":"qemu"}' | field '["id"]')
post "/v1/sandboxes/$vm/execute" '{"code":"print(sum(range(10**6)))","runtime":"python"}' >/dev/null
post "/v1/sandboxes/$vm/processes" '{"command":"sleep 86400"}' >/dev/null
echo "machine: $(nproc) CPUs, $(uname -r), accelerator $accel, $rounds rounds"

out=$(mktemp)
trap 'rm -f "$out"; curl -sf -X DELETE "$url/v1/sandboxes/$vm" >/dev/null' EXIT
i=0
while [ "$i" -lt "$rounds" ]; do
        before=$(mem_mib "$vm")
        t0=$(now)
        post "/v1/sandboxes/$vm/suspend" '{"hibernate":true}' >/dev/null
        t1=$(now)
        after=$(mem_mib "$vm")
        shell "$vm"
        t2=$(now)
        post "/v1/sandboxes/$vm/suspend" '' >/dev/null
        t3=$(now)
        shell "$vm"
        t4=$(now)
        cold=$(post /v1/sandboxes '{"isolator":"qemu"}' | field '["id"]')
        shell "$cold"
        t5=$(now)
        curl -sf -X DELETE "$url/v1/sandboxes/$cold" >/dev/null
        echo "$t0 $t1 $t2 $t3 $t4 $t5 $before $after" | awk '{
                printf "%.3f %.3f %.3f %.3f %d %d\n", $2 - $1, $3 - $2, $5 - $4, $6 - $5, $7, $8 }' |
                tee -a "$out" | awk '{
                printf "hibernate %.2f s (cgroup %d -> %d MiB), wake + shell %.2f s | suspend: resume + shell %.2f s | cold boot + shell %.2f s\n",
                        $1, $5, $6, $2, $3, $4 }'
        i=$((i + 1))
done
for c in 1 2 3 4 5 6; do
        sort -n -k"$c","$c" "$out" | awk -v c="$c" '{ v[NR] = $c } END { printf "%s ", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
done | awk '{
        printf "median: hibernate %.2f s, wake + shell %.2f s, resume + shell %.2f s, cold boot + shell %.2f s; cgroup %d -> %d MiB\n",
                $1, $2, $3, $4, $5, $6
        printf "ratios: wake / cold boot %.2fx, wake / resume of a paused VM %.1fx\n", $2 / $4, $2 / $3 }'
