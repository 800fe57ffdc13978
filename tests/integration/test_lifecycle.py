"""Sandbox lifecycle (docs/api.md "Lifecycle"): suspend and resume by hand and
transparently, idle suspend, TTL, the suspended state across a forged restart, bad
inputs."""

import threading
import time

from forge_client import check_error, check_sandbox, host_pids_matching, upper_dir, wait_until
from test_processes import follow, start

TICKER = "while true; do date +%s%N >> /tmp/t; sleep 0.05; done"


def status(sb):
    return check_sandbox(sb.client.get(sb.id).json())["status"]


def suspend(sb, expect=200):
    r = sb.req("POST", "/suspend")
    assert r.status == expect, r.describe()
    return check_sandbox(r.json()) if expect == 200 else r


def resume(sb, expect=200):
    r = sb.req("POST", "/resume")
    assert r.status == expect, r.describe()
    return check_sandbox(r.json()) if expect == 200 else r


def ticks(forged, sb):
    """Lines of the ticker's file, read from the host side: reading through the API
    would resume the sandbox."""
    try:
        with open(upper_dir(forged.state_dir, sb.id) + "/tmp/t") as f:
            return len(f.read().splitlines())
    except FileNotFoundError:
        return 0


def start_ticker(forged, sb):
    pid = start(sb, command=TICKER)["pid"]
    assert wait_until(lambda: ticks(forged, sb) > 2)
    return pid


def assert_frozen(forged, sb):
    n = ticks(forged, sb)
    time.sleep(0.6)
    assert ticks(forged, sb) == n, "the ticker went on while suspended"
    return n


def test_suspend_and_resume_by_hand(forged, make_sandbox):
    sb = make_sandbox()
    start_ticker(forged, sb)
    obj = suspend(sb)
    assert obj["status"] == "suspended" and obj["reason"] == "client", obj
    assert status(sb) == "suspended"
    assert sb.client.list_ids("status=suspended") == [sb.id]
    assert sb.id not in sb.client.list_ids("status=running")
    n = assert_frozen(forged, sb)
    assert suspend(sb)["status"] == "suspended"  # idempotent
    obj = resume(sb)
    assert obj["status"] == "running" and obj["reason"] is None, obj
    assert wait_until(lambda: ticks(forged, sb) > n + 3)
    assert resume(sb)["status"] == "running"  # idempotent


def test_follower_survives_suspend_and_resume(forged, make_sandbox):
    sb = make_sandbox()
    pid = start(sb, command="while read l; do echo got:$l; done", stdin=True)["pid"]
    s = follow(sb, pid)
    assert sb.req("POST", "/processes/%d/stdin" % pid, {"data": "one\n"}).status == 204
    assert s.next() == ("stdout", {"data": "got:one\n"})
    suspend(sb)
    # stdin to a suspended sandbox resumes it; the follower sees the answer
    assert sb.req("POST", "/processes/%d/stdin" % pid, {"data": "two\n"}).status == 204
    assert status(sb) == "running"
    assert s.next() == ("stdout", {"data": "got:two\n"})
    suspend(sb)
    resume(sb)
    assert sb.req("POST", "/processes/%d/stdin" % pid, {"data": "three\n"}).status == 204
    assert s.next() == ("stdout", {"data": "got:three\n"})
    s.close()


def test_transparent_resume(forged, make_sandbox):
    sb = make_sandbox()
    start_ticker(forged, sb)
    suspend(sb)
    n = assert_frozen(forged, sb)
    assert sb.sh("echo hi") == "hi\n"
    assert status(sb) == "running"
    assert wait_until(lambda: ticks(forged, sb) > n + 3)
    suspend(sb)
    sb.put_file("/root/f", b"data")
    assert status(sb) == "running"
    suspend(sb)
    assert sb.get_file("/root/f") == b"data"
    suspend(sb)
    assert sb.req("GET", "/processes").status == 200
    assert status(sb) == "running"
    # inspecting does not wake it
    suspend(sb)
    assert sb.client.get(sb.id).status == 200 and status(sb) == "suspended"
    resume(sb)


def test_concurrent_calls_share_one_resume(forged, make_sandbox):
    sb = make_sandbox()
    suspend(sb)
    results = [None] * 10

    def call(i):
        results[i] = sb.shell("echo %d" % i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, res in enumerate(results):
        assert res and res["exitCode"] == 0 and res["stdout"] == "%d\n" % i, res
    assert status(sb) == "running"
    with open(forged.log_path) as f:
        assert sum(1 for line in f if sb.id in line and "resumed" in line) == 1


def test_unknown_sandbox_is_404(forged, make_sandbox):
    sb = make_sandbox()
    r = sb.client.request("POST", "/v1/sandboxes/nosuchsandbox/suspend")
    check_error(r, 404, "sandbox_not_found")
    r = sb.client.request("POST", "/v1/sandboxes/nosuchsandbox/resume")
    check_error(r, 404, "sandbox_not_found")


def test_hibernate_needs_an_isolator_that_can(forged, make_sandbox, client):
    """ns keeps no machine to save: a hibernation is refused and changes nothing; bad
    bodies are refused before anything happens."""
    sb = make_sandbox()
    for body, code in (({"hibernate": True}, "not_supported"), ({"hibernate": "yes"}, "invalid_request"),
                       ({"hibernat": True}, "invalid_request")):
        doc = check_error(sb.req("POST", "/suspend", body), 400, code)
        assert "hibernat" in doc["error"], doc
        assert status(sb) == "running"
    assert suspend(sb)["hibernated"] is False
    check_error(sb.req("POST", "/suspend", {"hibernate": True}), 400, "not_supported")
    assert status(sb) == "suspended"
    before = sorted(client.list_ids())
    doc = check_error(client.request("POST", "/v1/sandboxes", {"isolator": "ns", "hibernate_after_s": 5}),
                      400, "not_supported")
    assert "hibernate_after_s" in doc["error"], doc
    check_error(client.request("POST", "/v1/sandboxes", {"hibernate_after_s": -1}), 400, "invalid_request")
    check_error(sb.req("POST", "/fork", {"hibernate_after_s": 5}), 400, "not_supported")
    assert sorted(client.list_ids()) == before
    assert sb.get()["hibernate_after_s"] == 0


def test_failed_sandbox_cannot_suspend(forged_fn):
    """A sandbox left `creating` by a dead forged comes back failed: 409 both ways."""
    import json
    import os
    c = forged_fn.client
    sb = c.create()
    forged_fn.kill9()
    rec_path = os.path.join(forged_fn.state_dir, "sandboxes", sb.id, "sandbox.json")
    with open(rec_path) as f:
        rec = json.load(f)
    rec["status"] = "creating"
    with open(rec_path, "w") as f:
        json.dump(rec, f)
    forged_fn.restart()
    obj = check_sandbox(c.get(sb.id).json())
    assert obj["status"] == "failed" and obj["reason"] == "interrupted_create", obj
    check_error(sb.req("POST", "/suspend"), 409, "sandbox_not_running")
    check_error(sb.req("POST", "/resume"), 409, "sandbox_not_running")
    check_error(sb.shell_raw({"command": "true"}), 409, "sandbox_not_running")


def test_idle_suspend(forged, make_sandbox):
    sb = make_sandbox({"idle_timeout_s": 1})
    assert sb.get()["idle_timeout_s"] == 1
    t0 = time.monotonic()
    sb.sh("true")
    assert wait_until(lambda: status(sb) == "suspended", timeout=5)
    assert 0.9 <= time.monotonic() - t0 <= 3.5
    obj = sb.get()
    assert obj["reason"] == "idle", obj
    assert sb.sh("echo back") == "back\n"
    assert status(sb) == "running"


def test_follower_keeps_it_awake(forged, make_sandbox):
    sb = make_sandbox({"idle_timeout_s": 1})
    pid = start(sb, command="sleep 3; echo done")["pid"]
    s = follow(sb, pid)
    time.sleep(2.2)
    assert status(sb) == "running"
    events = s.all()
    assert ("stdout", {"data": "done\n"}) in events, events
    # once the follower is gone the idle clock runs
    assert wait_until(lambda: status(sb) == "suspended", timeout=5)


def test_ttl_destroy(forged, make_sandbox):
    sb = make_sandbox({"ttl_s": 1})
    obj = sb.get()
    assert obj["ttl_s"] == 1 and obj["on_expire"] == "destroy", obj
    assert wait_until(lambda: sb.client.get(sb.id).status == 404, timeout=5)
    check_error(sb.client.get(sb.id), 404, "sandbox_not_found")
    with open(forged.log_path) as f:
        assert any(sb.id in line and "ttl" in line for line in f)


def test_ttl_suspend(forged, make_sandbox):
    sb = make_sandbox({"ttl_s": 1, "on_expire": "suspend"})
    assert wait_until(lambda: status(sb) == "suspended", timeout=5)
    assert sb.get()["reason"] == "ttl"
    # resumed by a call, it is not suspended again by the same TTL
    assert sb.sh("echo x") == "x\n"
    time.sleep(1)
    assert status(sb) == "running"


def test_restart_keeps_suspended(forged_fn):
    c = forged_fn.client
    sb = c.create()
    start_ticker(forged_fn, sb)
    suspend(sb)
    forged_fn.kill9()
    forged_fn.restart()
    obj = check_sandbox(c.get(sb.id).json())
    assert obj["status"] == "suspended" and obj["reason"] == "client", obj
    n = assert_frozen(forged_fn, sb)
    assert sb.sh("echo again") == "again\n"
    assert status(sb) == "running"
    assert wait_until(lambda: ticks(forged_fn, sb) > n + 3)


def test_get_shows_lifecycle_fields_and_usage(forged, make_sandbox):
    sb = make_sandbox({"idle_timeout_s": 600, "ttl_s": 3600, "on_expire": "suspend"})
    sb.sh("head -c 20000000 /dev/zero > /dev/null")
    obj = sb.get()
    assert obj["idle_timeout_s"] == 600 and obj["ttl_s"] == 3600 and obj["on_expire"] == "suspend"
    assert obj["last_active_at"] >= obj["created_at"]
    u = obj["usage"]
    assert u["cpu_usec"] > 0 and u["memory_bytes"] > 0 and u["pids"] >= 1, u
    assert u["memory_peak_bytes"] >= u["memory_bytes"], u
    assert u["disk_bytes"] is None or u["disk_bytes"] > 0, u


def test_bad_inputs(forged, client):
    for body in ({"ttl_s": -1}, {"idle_timeout_s": -5}, {"on_expire": "explode"},
                 {"on_expire": 3}, {"ttl_s": "10"}):
        r = client.request("POST", "/v1/sandboxes", body)
        check_error(r, 400, "invalid_request")


def test_destroy_suspended_leaves_nothing(forged, client):
    sb = client.create()
    sb.sh("sleep 4242.5 > /dev/null 2>&1 &")
    assert wait_until(lambda: host_pids_matching("4242.5"))  # fork to exec takes a moment
    suspend(sb)
    assert client.delete(sb.id).status == 204
    assert wait_until(lambda: not host_pids_matching("4242.5"), timeout=10)
    check_error(client.get(sb.id), 404, "sandbox_not_found")
