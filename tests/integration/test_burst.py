"""Bursts of concurrent creates (docs/snapshots.md, BENCHMARKS.md "Burst"): many creates
in flight on the thread pool at once, each followed by a first command. Every create
succeeds, every command answers, forged survives and every sandbox goes away cleanly.

This caught a double close in the ns isolator's spawn path: with several creates in
flight, the second close of an fd number hit whatever another thread (another create,
or the loop thread's connections and agent channels) had opened under it meanwhile."""

import threading

from forge_client import check_error
from test_faults import assert_all_clean

BURST = 24
# Cold creates on two shared cores: a burst of BURST takes seconds, not minutes.
TIMEOUT = 90.0


def run_burst(f, n):
    """n threads, released together, each create a sandbox and run a command in it.
    Returns ({index: sandbox id}, {index: failure text})."""
    ids, failures = {}, {}
    gate = threading.Barrier(n)

    def one(i):
        try:
            gate.wait(timeout=30)
            r = f.client.request("POST", "/v1/sandboxes", {"limits": {"pids": 200 + i}}, timeout=TIMEOUT)
            if r.status != 201:
                failures[i] = "create: " + r.describe()
                return
            sid = r.json()["id"]
            ids[i] = sid
            r = f.client.request("POST", "/v1/sandboxes/%s/shell" % sid,
                                 {"command": "echo burst-%d; id -u; cat /sys/fs/cgroup/pids.max "
                                             "2>/dev/null || true" % i}, timeout=TIMEOUT)
            if r.status != 200:
                failures[i] = "shell: " + r.describe()
                return
            res = r.json()
            lines = res["stdout"].splitlines()
            if res["exitCode"] != 0 or lines[:2] != ["burst-%d" % i, "0"]:
                failures[i] = "shell answered %r" % res
        except Exception as e:  # noqa: BLE001 - reported with the others below
            failures[i] = repr(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ids, failures


def destroy_all(f, ids):
    statuses = {}

    def one(sid):
        try:
            statuses[sid] = f.client.delete(sid).status
        except Exception as e:  # noqa: BLE001
            statuses[sid] = repr(e)

    threads = [threading.Thread(target=one, args=(sid,)) for sid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_burst_of_concurrent_creates(forged_factory):
    f = forged_factory(["--max-sandboxes", str(BURST + 8)])
    ids, failures = run_burst(f, BURST)
    assert f.alive(), "forged exited during the burst\n" + f.log_tail()
    assert not failures, "%d of %d failed: %r" % (len(failures), BURST, failures)
    assert len(set(ids.values())) == BURST
    assert sorted(f.client.list_ids()) == sorted(ids.values())
    log = f.log_tail(limit=1 << 22)
    assert "create failed" not in log and "Bad file descriptor" not in log

    # Every one still answers after the burst (no agent channel was closed under it).
    for i, sid in ids.items():
        assert f.client.sandbox(sid).sh("echo again-%d" % i) == "again-%d\n" % i

    statuses = destroy_all(f, list(ids.values()))
    assert all(s == 204 for s in statuses.values()), statuses
    assert f.alive()
    for sid in ids.values():
        check_error(f.client.get(sid), 404, "sandbox_not_found")
    assert f.client.health().status == 200
    assert_all_clean(f)
