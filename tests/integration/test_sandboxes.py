"""Sandbox lifecycle routes: create, inspect, list (filters), destroy (docs/api.md
"Sandboxes")."""

import os
import time

from forge_client import (ID_RE, LIMIT_KEYS, check_error, check_sandbox, host_pids_matching,
                          wait_until)

DEFAULT_LIMITS = {"cpus": 1, "memory_mb": 512, "pids": 256, "timeout_ms": 60000}


def _raw_create(client, extra_headers=b""):
    head = (b"POST /v1/sandboxes HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % client.port
            + extra_headers + b"Connection: close\r\n\r\n")
    r = client.raw(head, timeout=60, method="POST")
    assert r is not None, "forged closed the connection on a body-less create"
    return r


def test_create_without_body_or_content_type(client):
    """No Content-Length, no Content-Type, no body: all defaults."""
    r = _raw_create(client)
    assert r.status == 201, r.describe()
    assert r.content_type == "application/json"
    sb = check_sandbox(r.json())
    try:
        assert ID_RE.match(sb["id"])
        assert sb["status"] == "running"
        assert sb["image"] == "host"
        assert sb["isolator"] == "ns"
        assert sb["name"] is None
        assert sb["metadata"] == {} and sb["env"] == {}
        assert sb["cwd"] == "/root"
        for k, v in DEFAULT_LIMITS.items():
            assert sb["limits"][k] == v, (k, sb["limits"])
        assert sb["created_at"] == sb["updated_at"] or sb["updated_at"] > sb["created_at"]
    finally:
        assert client.delete(sb["id"]).status == 204


def test_create_content_length_zero(client):
    """Content-Length: 0 without Content-Type (what fetch sends for a body-less POST)."""
    r = _raw_create(client, b"Content-Length: 0\r\n")
    assert r.status == 201, r.describe()
    sid = r.json()["id"]
    assert ID_RE.match(sid)
    assert client.delete(sid).status == 204


def test_create_empty_object_means_defaults(client, make_sandbox):
    sb = make_sandbox({})
    info = sb.get()
    assert info["cwd"] == "/root" and info["image"] == "host"
    for k, v in DEFAULT_LIMITS.items():
        assert info["limits"][k] == v


def test_ids_are_unique(client, make_sandbox):
    ids = {make_sandbox().id for _ in range(3)}
    assert len(ids) == 3 and all(ID_RE.match(i) for i in ids)


def test_create_spec_reflected(client, make_sandbox):
    spec = {
        "limits": {"cpus": 0.5, "memory_mb": 128, "pids": 64, "timeout_ms": 30000},
        "env": {"GREETING": "hello world", "EMPTY": ""},
        "cwd": "/tmp",
        "metadata": {"owner": "tests", "purpose": "reflect"},
        "name": "reflect-me",
        "isolator": "ns",
        "image": "host",
    }
    sb = make_sandbox(spec)
    for doc in (sb.info, sb.get()):
        check_sandbox(doc)
        assert doc["limits"]["cpus"] == 0.5
        assert doc["limits"]["memory_mb"] == 128
        assert doc["limits"]["pids"] == 64
        assert doc["limits"]["timeout_ms"] == 30000
        assert doc["env"] == spec["env"]
        assert doc["cwd"] == "/tmp"
        assert doc["metadata"] == spec["metadata"]
        assert doc["name"] == "reflect-me"
        assert doc["isolator"] == "ns" and doc["image"] == "host"
    # ...and applied to commands
    res = sb.shell('printf "%s|%s|" "$GREETING" "${EMPTY-unset}"; pwd')
    assert res["stdout"] == "hello world||/tmp\n"


def test_partial_limits_keep_other_defaults(make_sandbox):
    sb = make_sandbox({"limits": {"memory_mb": 256}})
    lim = sb.get()["limits"]
    assert lim["memory_mb"] == 256
    for k in LIMIT_KEYS:
        if k != "memory_mb":
            assert lim[k] == DEFAULT_LIMITS[k], lim


def test_create_with_runtime(make_sandbox):
    sb = make_sandbox({"runtime": "python"})
    assert sb.get()["image"] == "host"
    assert sb.sh("python3 -c 'print(6*7)'") == "42\n"


def test_create_unknown_runtime(client):
    before = client.list_ids()
    check_error(client.request("POST", "/v1/sandboxes", {"runtime": "cobol"}), 400,
                "unsupported_runtime")
    assert client.list_ids() == before


def test_sandbox_timeout_ms_is_default_per_command(make_sandbox):
    sb = make_sandbox({"limits": {"timeout_ms": 1000}})
    t0 = time.monotonic()
    res = sb.shell("sleep 20")
    assert time.monotonic() - t0 < 10
    assert res["timedOut"] is True and res["exitCode"] == 124
    # a per-call timeout overrides it
    res = sb.shell("sleep 1.5; echo done", timeout_ms=10000)
    assert res["timedOut"] is False and res["stdout"] == "done\n"


def test_call_env_merges_over_sandbox_env(make_sandbox):
    sb = make_sandbox({"env": {"A": "sandbox-a", "B": "sandbox-b"}})
    res = sb.shell('echo "$A $B $C"', env={"B": "call-b", "C": "call-c"})
    assert res["stdout"] == "sandbox-a call-b call-c\n"
    # the per-call env does not stick
    assert sb.sh('echo "$A $B ${C-none}"') == "sandbox-a sandbox-b none\n"


def test_get(client, sandbox):
    r = client.get(sandbox.id)
    assert r.status == 200 and r.content_type == "application/json"
    doc = check_sandbox(r.json())
    assert doc["id"] == sandbox.id and doc["status"] == "running"
    assert doc["created_at"] == sandbox.info["created_at"]


def test_singular_alias(client, sandbox):
    r = client.request("GET", "/v1/sandbox/%s" % sandbox.id)
    assert r.status == 200 and r.json()["id"] == sandbox.id
    r = client.request("GET", "/v1/sandbox")
    assert r.status == 200 and sandbox.id in [s["id"] for s in r.json()["sandboxes"]]


def test_list_oldest_first(client, make_sandbox):
    a = make_sandbox()
    time.sleep(0.01)
    b = make_sandbox()
    listed = client.list()
    for s in listed:
        check_sandbox(s)
    ids = [s["id"] for s in listed]
    assert ids.index(a.id) < ids.index(b.id)
    created = [s["created_at"] for s in listed]
    assert created == sorted(created)


def test_list_status_filter(client, sandbox):
    assert sandbox.id in client.list_ids("status=running")
    assert sandbox.id not in client.list_ids("status=failed")
    assert all(s["status"] == "running" for s in client.list("status=running"))


def test_list_metadata_filters(client, make_sandbox):
    a = make_sandbox({"metadata": {"team": "blue", "stage": "prod", "note": "a b&c"}})
    b = make_sandbox({"metadata": {"team": "blue", "stage": "dev"}})
    c = make_sandbox({"metadata": {"team": "red"}})
    assert set(client.list_ids("metadata.team=blue")) == {a.id, b.id}
    assert client.list_ids("metadata.team=blue&metadata.stage=prod") == [a.id]
    assert client.list_ids("metadata.team=red") == [c.id]
    assert client.list_ids("metadata.team=green") == []
    assert client.list_ids("metadata.stage=dev&metadata.team=red") == []
    assert client.list_ids("metadata.note=a%20b%26c") == [a.id]
    assert client.list_ids("status=running&metadata.team=red") == [c.id]


def test_delete(client, make_sandbox, forged):
    sb = make_sandbox()
    sb.sh("echo x > /root/file")
    r = client.delete(sb.id)
    assert r.status == 204
    assert r.body == b""
    check_error(client.get(sb.id), 404, "sandbox_not_found")
    assert sb.id not in client.list_ids()
    check_error(sb.shell_raw({"command": "true"}), 404, "sandbox_not_found")
    # its files are gone from the state dir
    assert wait_until(lambda: not os.path.exists(
        os.path.join(forged.state_dir, "sandboxes", sb.id)), timeout=10)


def test_delete_twice(client, make_sandbox):
    sb = make_sandbox()
    assert client.delete(sb.id).status == 204
    check_error(client.delete(sb.id), 404, "sandbox_not_found")


def test_delete_via_singular_alias(client, make_sandbox):
    sb = make_sandbox()
    assert client.request("DELETE", "/v1/sandbox/%s" % sb.id).status == 204
    check_error(client.get(sb.id), 404, "sandbox_not_found")


def _cgroup_dirs_named(sid):
    hits = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        hits.extend(os.path.join(root, d) for d in dirs if sid in d)
    return hits


def test_delete_kills_processes_and_leaves_nothing(client, make_sandbox, forged):
    sb = make_sandbox()
    token = "98%d" % (os.getpid() % 10000)
    sb.sh("sleep %s.5 > /dev/null 2>&1 &" % token)
    assert wait_until(lambda: host_pids_matching("sleep %s.5" % token), timeout=5)
    assert client.delete(sb.id).status == 204
    assert wait_until(lambda: not host_pids_matching("sleep %s.5" % token), timeout=10), \
        "processes of a destroyed sandbox survive"
    prefix = os.path.join(forged.state_dir, "sandboxes", sb.id)
    with open("/proc/self/mountinfo") as f:
        leaked = [ln for ln in f if prefix in ln]
    assert leaked == [], leaked
    assert _cgroup_dirs_named(sb.id) == []
    assert client.health().status == 200
