#!/bin/sh
# Image benchmark (see BENCHMARKS.md): build time of each recipe image, then time to
# interactive (create -> first command's result) per image, with `host` as the peer
# measured in the same run, the images taking turns round by round. Starts forged on a free port with a temporary state dir.
#   bench/images.sh [ROUNDS] [IMAGES...]      (default 10 rounds; base python node)
# FORGE_URL=... bench/images.sh uses an already running forged (images it has are kept).
set -eu
cd "$(dirname "$0")/.."
. bench/forged.sh
B=${FORGE_BUILD:-build}
rounds=${1:-10}
[ $# -gt 0 ] && shift
images=${*:-base python node}
make -s all >/dev/null

if [ -z "${FORGE_URL:-}" ]; then
        forged_start --isolator auto
fi
echo "kernel: $(uname -sr), nproc: $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg), forged: $FORGE_URL"
/usr/bin/python3 - "$rounds" $images <<'PY'
import json, os, statistics, sys, time, urllib.request

url = os.environ["FORGE_URL"]
rounds, names = int(sys.argv[1]), sys.argv[2:]

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=1800) as r:
        return r.read()

have = {i["name"] for i in json.loads(call("GET", "/v1/images"))["images"]}
print("%-8s %12s %10s" % ("image", "build s", "size MiB"))
for n in names:
    if n in have:
        print("%-8s %12s %10s" % (n, "(exists)", ""))
        continue
    t0 = time.monotonic()
    body = call("POST", "/v1/images/%s/build" % n).decode()
    took = time.monotonic() - t0
    last = [b for b in body.split("\n\n") if b.strip()][-1]
    if not last.startswith("event: done"):
        sys.exit("build of %s failed: %s" % (n, last))
    img = json.loads(last.split("data: ", 1)[1])
    print("%-8s %12.1f %10.1f" % (n, took, img["size"] / 2**20))

def tti(image):
    t0 = time.monotonic()
    sb = json.loads(call("POST", "/v1/sandboxes", {"image": image}))
    out = json.loads(call("POST", "/v1/sandboxes/%s/shell" % sb["id"], {"command": "echo ready"}))
    took = time.monotonic() - t0
    call("DELETE", "/v1/sandboxes/%s" % sb["id"])
    assert out["stdout"] == "ready\n", out
    return took * 1000

print("\nTTI: create -> first command result, ms (median of %d rounds, images interleaved; p90)" % rounds)
order = ["host"] + names
for n in order:
    tti(n)  # warm the page cache of the image
samples = {n: [] for n in order}
for _ in range(rounds):
    for n in order:  # interleaved, so load drifting during the run hits every image alike
        samples[n].append(tti(n))
host = statistics.median(samples["host"])
for n in order:
    s = sorted(samples[n])
    print("%-8s %8.1f ms  p90 %8.1f ms  ratio to host %.2f" % (
        n, statistics.median(s), s[int(0.9 * (len(s) - 1))], statistics.median(s) / host))
PY
