"""Fork and snapshots (docs/snapshots.md): a new sandbox from a copy of another's
filesystem, saved filesystems, sandboxes made from them; independence, ownership inside,
processes not carried over, bad inputs, and a restart."""

import threading
import time

from forge_client import check_error, check_sandbox, host_pids_matching, wait_until
from test_lifecycle import resume, status, suspend
from test_processes import start

# Sandboxes have no CAP_CHOWN: what root writes is all there is to own. Unshifted, the
# copies would show as the overflow uid (nobody) in a sandbox with another uid range.
SETUP = ("mkdir -p /root/w /home/bob && echo one > /root/w/f && echo mine > /home/bob/note && "
         "cp /bin/true /root/w/tool && chmod 6755 /root/w/tool && "
         "head -c 3000000 /dev/urandom > /root/w/blob && ln -s /root/w/f /root/link")
CHECK = ("cat /root/w/f /home/bob/note; stat -c '%U %G %a' /home/bob/note /root/w/tool /root/w /root/link; "
         "readlink /root/link; md5sum < /root/w/blob")


def fork(sb, body=None, expect=201):
    r = sb.req("POST", "/fork", body)
    assert r.status == expect, r.describe()
    return r


def snapshot(sb, body=None, expect=201):
    r = sb.req("POST", "/snapshot", body)
    assert r.status == expect, r.describe()
    return r.json()


def test_fork_copies_files_and_ownership(forged, make_sandbox):
    a = make_sandbox({"metadata": {"team": "x", "run": "1"}, "env": {"E": "e"}})
    a.sh(SETUP)
    want = a.sh(CHECK)
    r = fork(a, {"name": "kid", "metadata": {"run": "2"}})
    b = forged.client.sandbox(r.json()["id"])
    try:
        obj = check_sandbox(r.json())
        assert obj["status"] == "running" and obj["name"] == "kid"
        assert obj["metadata"] == {"team": "x", "run": "2"}
        assert obj["limits"] == check_sandbox(a.get())["limits"]
        assert b.sh(CHECK) == want
        assert b.sh("echo $E") == "e\n"
        # Each has its own uid range; files show the same owners inside.
        assert a.sh("cat /proc/self/uid_map") != b.sh("cat /proc/self/uid_map")
        # Independent both ways.
        b.sh("echo two > /root/w/f; rm /root/w/blob")
        a.sh("echo three > /home/bob/note")
        assert a.sh("cat /root/w/f; ls /root/w") == "one\nblob\nf\ntool\n"
        assert b.sh("cat /home/bob/note") == "mine\n"
    finally:
        forged.client.delete(b.id)


def test_fork_leaves_processes_behind_and_the_source_running(forged, make_sandbox):
    a = make_sandbox()
    pid = start(a, command="while true; do echo tick >> /root/ticks; sleep 0.05; done")["pid"]
    a.sh("sleep 7171.5 > /dev/null 2>&1 &")
    assert wait_until(lambda: int(a.sh("wc -l < /root/ticks")) > 3)
    b = forged.client.sandbox(fork(a).json()["id"])
    try:
        assert b.req("GET", "/processes").json()["processes"] == []
        assert "sleep" not in b.sh("ps -e -o comm=")
        n = int(b.sh("wc -l < /root/ticks"))
        time.sleep(0.3)
        assert int(b.sh("wc -l < /root/ticks")) == n
        # The source went on after the copy.
        m = int(a.sh("wc -l < /root/ticks"))
        assert wait_until(lambda: int(a.sh("wc -l < /root/ticks")) > m)
        assert a.req("GET", "/processes/%d" % pid).json()["status"] == "running"
        assert len(host_pids_matching("sleep 7171.5")) == 1
    finally:
        forged.client.delete(b.id)


def test_fork_of_a_suspended_sandbox_keeps_it_suspended(forged, make_sandbox):
    a = make_sandbox()
    a.sh("echo kept > /root/k")
    suspend(a)
    b = forged.client.sandbox(fork(a).json()["id"])
    try:
        assert status(a) == "suspended"
        assert b.sh("cat /root/k") == "kept\n"
        resume(a)
        assert a.sh("cat /root/k") == "kept\n"
    finally:
        forged.client.delete(b.id)


def test_calls_during_a_fork_wait_for_it(forged, make_sandbox):
    a = make_sandbox()
    a.sh("head -c 50000000 /dev/urandom > /root/big")
    results = []
    t = threading.Thread(target=lambda: results.append(fork(a)))
    t.start()
    # Whatever the timing, these succeed: before, during (waiting) or after the copy.
    for i in range(5):
        assert a.sh("echo %d" % i) == "%d\n" % i
    t.join(60)
    b = forged.client.sandbox(results[0].json()["id"])
    assert b.sh("stat -c %s /root/big") == "50000000\n"
    forged.client.delete(b.id)


def test_snapshot_and_sandboxes_from_it(forged, make_sandbox):
    a = make_sandbox()
    a.sh(SETUP)
    want = a.sh(CHECK)
    snap = snapshot(a, {"name": "base"})
    sid = snap["snapshot_id"]
    assert snap["id"] == sid and sid.startswith("snap-")
    assert snap["sandbox_id"] == a.id and snap["image"] == "host" and snap["name"] == "base"
    assert snap["disk_mb"] == 4096 and 3000000 < snap["size_bytes"] < 200 << 20
    assert forged.client.request("GET", "/v1/snapshots/" + sid).json() == snap
    assert sid in [s["id"] for s in forged.client.request("GET", "/v1/snapshots").json()["snapshots"]]

    a.sh("echo later > /root/w/f")
    c = make_sandbox({"from_snapshot": sid})
    d = make_sandbox({"from_snapshot": sid, "limits": {"disk_mb": 4096, "memory_mb": 256}})
    assert c.sh(CHECK) == want and d.sh(CHECK) == want
    c.sh("echo c > /root/w/f")
    assert d.sh("cat /root/w/f") == "one\n"
    assert check_sandbox(d.get())["limits"]["memory_mb"] == 256

    # Sandboxes made from it do not need it, nor does it need its source.
    assert forged.client.delete(a.id).status == 204
    e = make_sandbox({"from_snapshot": sid})
    assert e.sh("cat /root/w/f") == "one\n"
    assert forged.client.request("DELETE", "/v1/snapshots/" + sid).status == 204
    check_error(forged.client.request("GET", "/v1/snapshots/" + sid), 404, "snapshot_not_found")
    check_error(forged.client.request("DELETE", "/v1/snapshots/" + sid), 404, "snapshot_not_found")
    assert c.sh("cat /root/w/f") == "c\n"


def test_bad_snapshot_and_fork_requests(forged, make_sandbox):
    c = forged.client
    a = make_sandbox()
    sid = snapshot(a)["id"]
    for bad in ("nope", "..", "snap-", "snap-AAAAAAAAAA", "snap-0000000000"):
        check_error(c.request("GET", "/v1/snapshots/" + bad), 404, "snapshot_not_found")
    check_error(c.request("POST", "/v1/sandboxes", {"from_snapshot": "snap-0000000000"}), 404, "snapshot_not_found")
    check_error(c.request("POST", "/v1/sandboxes", {"from_snapshot": 7}), 400, "invalid_request")
    check_error(c.request("POST", "/v1/sandboxes", {"from_snapshot": sid, "limits": {"disk_mb": 64}}),
                400, "invalid_request")
    check_error(c.request("POST", "/v1/sandboxes", {"from_snapshot": sid, "image": "other"}), 400, "invalid_request")
    check_error(a.req("POST", "/fork", {"image": "host"}), 400, "invalid_request")
    check_error(a.req("POST", "/fork", {"ttl_s": -1}), 400, "invalid_request")
    check_error(a.req("POST", "/snapshot", {"what": 1}), 400, "invalid_request")
    check_error(c.request("POST", "/v1/sandboxes/nope/fork"), 404, "sandbox_not_found")
    check_error(c.request("POST", "/v1/sandboxes/nope/snapshot"), 404, "sandbox_not_found")
    check_error(c.request("PUT", "/v1/snapshots/" + sid), 405, "method_not_allowed")
    # Nothing was made by any of them.
    assert c.list_ids() == [a.id]
    assert [s["id"] for s in c.request("GET", "/v1/snapshots").json()["snapshots"]] == [sid]
    c.request("DELETE", "/v1/snapshots/" + sid)


def test_snapshots_survive_a_restart(forged_fn):
    f = forged_fn
    a = f.client.create()
    a.sh("echo persisted > /root/p")
    sid = snapshot(a)["id"]
    f.kill9()
    f.start()
    assert [s["id"] for s in f.client.request("GET", "/v1/snapshots").json()["snapshots"]] == [sid]
    b = f.client.create({"from_snapshot": sid})
    assert b.sh("cat /root/p") == "persisted\n"
