#!/usr/bin/python3
"""Lifecycle benchmark (BENCHMARKS.md "Lifecycle"): resume, warm pool, fork, burst.

Talks to the forged at $FORGE_URL (bench/lifecycle.sh starts one with --pool). Every
figure is printed beside a peer measured in the same run, and as a ratio to it.
Standard library only."""

import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

URL = urllib.parse.urlsplit(os.environ["FORGE_URL"])
ROUNDS = int(os.environ.get("ROUNDS", "15"))
BURST = int(os.environ.get("BURST", "50"))


def call(method, path, body=None, expect=None):
    conn = http.client.HTTPConnection(URL.hostname, URL.port, timeout=300)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, data, {"Content-Type": "application/json"} if data else {})
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    if expect and r.status != expect:
        sys.exit("%s %s: HTTP %d %s" % (method, path, r.status, raw[:300]))
    return json.loads(raw) if raw else None


LIVE = set()


def create(spec=None):
    sid = call("POST", "/v1/sandboxes", spec or {}, 201)["id"]
    LIVE.add(sid)
    return sid


def sh(sid, command, timeout_ms=60000):
    res = call("POST", "/v1/sandboxes/%s/shell" % sid, {"command": command, "timeout_ms": timeout_ms}, 200)
    if res["exitCode"] != 0:
        sys.exit("%r failed: %r" % (command, res))
    return res["stdout"]


def delete(sid):
    call("DELETE", "/v1/sandboxes/" + sid, None, 204)
    LIVE.discard(sid)


def timed(fn):
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def pool_size():
    conn = http.client.HTTPConnection(URL.hostname, URL.port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    for line in text.splitlines():
        if line.startswith("forge_pool_size "):
            return int(float(line.split()[1]))
    return 0


def wait_pool(n, timeout=120):
    end = time.time() + timeout
    while pool_size() < n:
        if time.time() > end:
            sys.exit("the pool did not refill to %d" % n)
        time.sleep(0.05)


def p(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def row(name, ms, peer_name, peer_ms, target=None):
    ratio = ms / peer_ms
    verdict = "" if target is None else ("  (target <= %.1fx: %s)" % (target, "met" if ratio <= target else "MISSED"))
    print("%-38s %9.1f ms   %-30s %9.1f ms   %6.2fx%s" % (name, ms, peer_name, peer_ms, ratio, verdict))
    return ratio


def bench_resume():
    sid = create()
    sh(sid, "true")
    rtt = [timed(lambda: sh(sid, "true")) for _ in range(ROUNDS * 2)]
    resume = []
    for _ in range(ROUNDS):
        call("POST", "/v1/sandboxes/%s/suspend" % sid, None, 200)
        resume.append(timed(lambda: sh(sid, "true")))
    delete(sid)
    return row("resume + first command, p50", statistics.median(resume), "exec round trip, p50",
               statistics.median(rtt), 2.0)


def bench_pool(pool):
    cold, warm = [], []
    for _ in range(ROUNDS):
        wait_pool(pool)
        # pids 255: any spec the warm sandboxes do not fit makes a cold create.
        for spec, out in (({"limits": {"pids": 255}}, cold), ({}, warm)):
            ids = []
            out.append(timed(lambda: ids.append(create(spec)) or sh(ids[0], "true")))
            delete(ids[0])
    return row("pooled create + first command, p50", statistics.median(warm), "cold create + first command",
               statistics.median(cold), 0.5), statistics.median(cold)


def host_tree(root, files, size):
    os.makedirs(root)
    block = os.urandom(size)
    for i in range(files):
        d = os.path.join(root, "d%03d" % (i % 100))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "f%05d" % i), "wb") as f:
            f.write(block)


def bench_fork(state_dir, files, size, label):
    sid = create()
    sh(sid, "python3 -c 'import os\nb = os.urandom(%d)\nfor i in range(%d):\n"
            "    d = \"/root/t/d%%03d\" %% (i %% 100)\n    os.makedirs(d, exist_ok=True)\n"
            "    open(d + \"/f%%05d\" %% i, \"wb\").write(b)' && sync" % (size, files), timeout_ms=600000)
    assert sh(sid, "find /root/t -type f | wc -l").strip() == str(files)
    forks = []
    for _ in range(max(3, ROUNDS // 3)):
        new = []
        forks.append(timed(lambda: new.append(call("POST", "/v1/sandboxes/%s/fork" % sid, {}, 201)["id"])))
        delete(new[0])
    delete(sid)
    tmp = tempfile.mkdtemp(dir=state_dir)
    try:
        host_tree(os.path.join(tmp, "src"), files, size)
        cps = []
        for i in range(max(3, ROUNDS // 3)):
            dst = os.path.join(tmp, "dst%d" % i)
            cps.append(timed(lambda: subprocess.run(["cp", "-a", os.path.join(tmp, "src"), dst], check=True)))
    finally:
        shutil.rmtree(tmp)
    return row("fork, %s, p50" % label, statistics.median(forks), "cp -a of the same tree, p50",
               statistics.median(cps))


def bench_burst(cold_ms):
    tti, errors = [], []

    def one():
        try:
            t = time.perf_counter()
            sid = create({"limits": {"pids": 255}})
            sh(sid, "true")
            tti.append((time.perf_counter() - t) * 1000)
            delete(sid)
        except (SystemExit, OSError) as e:
            errors.append(str(e))

    threads = [threading.Thread(target=one) for _ in range(BURST)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("burst of %d: %d succeeded, %d failed%s" % (BURST, len(tti), len(errors),
                                                      (", first error: " + errors[0]) if errors else ""))
    if not tti:
        return
    row("burst of %d cold creates: TTI p50" % BURST, statistics.median(tti), "one cold create + command",
        cold_ms)
    row("burst of %d cold creates: TTI p99" % BURST, p(tti, 0.99), "one cold create + command", cold_ms)


def main():
    pool = int(os.environ.get("POOL", "2"))
    print("kernel: %s, nproc: %d, forged: %s, rounds: %d" % (os.uname().release, os.cpu_count(),
                                                              os.environ["FORGE_URL"], ROUNDS))
    try:
        bench_resume()
        _, cold_ms = bench_pool(pool)
        state = os.environ["FORGE_STATE"]
        bench_fork(state, 100, 1 << 20, "100 MB in 100 files")
        bench_fork(state, 10000, 1024, "10,000 files of 1 KiB")
        bench_burst(cold_ms)
    finally:
        for sid in list(LIVE):
            try:
                call("DELETE", "/v1/sandboxes/" + sid)
            except OSError as e:
                print("cannot delete %s: %s" % (sid, e))


if __name__ == "__main__":
    main()
