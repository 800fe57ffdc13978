"""The warm pool (forged --pool N; docs/lifecycle.md "Warm pool"): creates take a warm
sandbox and the pool refills; warm sandboxes are fresh, unlisted, count against
--max-sandboxes, and do not outlive a restart."""

import json
import os
import subprocess

from forge_client import check_error, check_sandbox, host_pids_matching, wait_until
from test_faults import assert_all_clean, mounts_under, sandbox_cgroups
from test_metrics import scrape, value


def pool_size(f):
    samples, _ = scrape(f.client)
    return value(samples, "forge_pool_size")


def warm_ids(f):
    """Ids of the warm sandboxes, read from their records on the host."""
    ids = []
    base = os.path.join(f.state_dir, "sandboxes")
    for sid in os.listdir(base):
        try:
            with open(os.path.join(base, sid, "sandbox.json")) as fh:
                if json.load(fh).get("pooled"):
                    ids.append(sid)
        except (OSError, ValueError):
            pass
    return sorted(ids)


def wait_full(f, n):
    assert wait_until(lambda: pool_size(f) == n, timeout=30), "pool size %s, want %d" % (pool_size(f), n)


def test_create_takes_a_warm_sandbox_and_the_pool_refills(forged_factory):
    f = forged_factory(["--pool", "2"])
    wait_full(f, 2)
    warm = warm_ids(f)
    assert len(warm) == 2
    assert f.client.list_ids() == []
    for sid in warm:
        check_error(f.client.get(sid), 404, "sandbox_not_found")

    sb = f.client.create({"name": "w", "metadata": {"k": "v"}, "env": {"A": "1"}, "cwd": "/tmp"})
    assert sb.id in warm
    obj = check_sandbox(sb.get())
    assert obj["name"] == "w" and obj["metadata"] == {"k": "v"} and obj["status"] == "running"
    assert sb.sh("echo $A; pwd") == "1\n/tmp\n"
    assert f.client.list_ids() == [sb.id]
    wait_full(f, 2)
    assert sb.id not in warm_ids(f)
    assert "from the pool" in f.log_tail()


def test_warm_sandboxes_are_fresh(forged_factory):
    """Nothing one tenant leaves in its sandbox reaches the next one's."""
    f = forged_factory(["--pool", "1"])
    wait_full(f, 1)
    a = f.client.create()
    a.sh("echo secret > /root/secret; echo x > /tmp/x; (sleep 9191.5 &) ; useradd mallory")
    assert wait_until(lambda: host_pids_matching("sleep 9191.5"))  # fork to exec takes a moment
    wait_full(f, 1)
    assert f.client.delete(a.id).status == 204
    b = f.client.create()
    assert b.id != a.id
    assert b.sh("ls -A /root /tmp; grep -c mallory /etc/passwd || true") == "/root:\n\n/tmp:\n0\n"
    assert "sleep" not in b.sh("ps -e -o comm=")
    assert b.req("GET", "/processes").json()["processes"] == []
    assert not host_pids_matching("sleep 9191.5")
    check_error(f.client.get(a.id), 404, "sandbox_not_found")


def test_creates_that_ask_for_something_else_are_cold(forged_factory):
    f = forged_factory(["--pool", "1"])
    wait_full(f, 1)
    warm = warm_ids(f)
    sb = f.client.create({"limits": {"memory_mb": 256}})
    assert sb.id not in warm and warm_ids(f) == warm
    assert check_sandbox(sb.get())["limits"]["memory_mb"] == 256
    # A different command timeout is not part of the sandbox: the warm one fits.
    sb2 = f.client.create({"limits": {"timeout_ms": 5000}})
    assert sb2.id in warm
    assert check_sandbox(sb2.get())["limits"]["timeout_ms"] == 5000


def test_pool_counts_against_max_sandboxes(forged_factory):
    f = forged_factory(["--pool", "2", "--max-sandboxes", "2"])
    wait_full(f, 2)
    a = f.client.create()
    b = f.client.create()
    check_error(f.client.request("POST", "/v1/sandboxes"), 503, "at_capacity")
    # No room is left for warm ones while both are in use.
    assert pool_size(f) == 0 and warm_ids(f) == []
    assert f.client.delete(a.id).status == 204
    wait_full(f, 1)
    assert f.client.delete(b.id).status == 204


def test_warm_sandboxes_do_not_outlive_forged(forged_factory):
    f = forged_factory(["--pool", "2"])
    wait_full(f, 2)
    old = warm_ids(f)
    f.kill9()
    f.start()
    wait_full(f, 2)
    new = warm_ids(f)
    assert not set(old) & set(new)
    for sid in old:
        assert not [m for m in mounts_under(f.state_dir) if sid in m]
        assert sid not in sandbox_cgroups(f.state_dir)
    # A clean stop destroys them.
    f.stop()
    assert warm_ids(f) == []
    f.start()
    f.stop()
    assert warm_ids(f) == []


def test_bad_pool_flags_are_refused(forged_factory):
    f = forged_factory()
    forged = os.path.join(os.environ.get("FORGE_BUILD", "build"), "bin", "forged")
    for args, msg in ((["--pool", "x"], "--pool"), (["--pool", "3", "--max-sandboxes", "2"], "--max-sandboxes")):
        p = subprocess.run([forged, "--state-dir", f.state_dir] + args, capture_output=True, timeout=10)
        assert p.returncode == 2 and msg.encode() in p.stderr, p
    assert_all_clean(f)
