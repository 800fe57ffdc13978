"""Sandboxes outlive forged (DESIGN.md section 1, rule 2): kill -9, restart on the same
state dir, reconcile. Each test gets its own forged (forged_fn)."""

import hashlib
import json
import os
import socket
import threading
import time

from forge_client import MiB, check_error, check_sandbox, host_pids_matching, q, wait_until


def _populate(sb, tag):
    sb.sh("mkdir -p work && cat > work/notes.txt <<'SANDBOX_EOF'\nnotes of %s\nSANDBOX_EOF"
          % tag)
    data = hashlib.sha256(tag.encode()).digest() * 4096  # 128 KiB
    sb.put_file("/root/blob.bin", data)
    return data


def _check_populated(sb, tag, data):
    assert sb.sh("cat work/notes.txt") == "notes of %s\n" % tag
    assert sb.get_file("/root/blob.bin") == data
    assert sb.sh("pwd") == "/root\n"


def test_state_persists_across_calls(forged_fn):
    sb = forged_fn.client.create()
    data = _populate(sb, "calls")
    for _ in range(3):
        _check_populated(sb, "calls", data)


def test_kill9_and_restart_keeps_everything(forged_fn):
    c = forged_fn.client
    specs = [None, {"name": "second", "metadata": {"k": "v"}, "env": {"E": "e"},
                    "limits": {"memory_mb": 128, "pids": 64, "timeout_ms": 5000,
                               "cpus": 0.5}}]
    sbs = [c.create(s) for s in specs]
    datas = [_populate(sb, sb.id) for sb in sbs]
    sbs[0].sh("sleep 7777.5 > /dev/null 2>&1 &")
    before = {s["id"]: s for s in c.list()}

    forged_fn.kill9()
    assert not forged_fn.alive()
    forged_fn.restart()

    after = {s["id"]: s for s in c.list()}
    assert set(after) == set(before)
    for sid, old in before.items():
        new = check_sandbox(after[sid])
        assert new["status"] == "running", new
        for k in ("image", "isolator", "name", "metadata", "env", "cwd", "limits",
                  "created_at"):
            assert new[k] == old[k], (k, old, new)
    for sb, data in zip(sbs, datas):
        _check_populated(sb, sb.id, data)
    assert sbs[1].sh('echo "$E"') == "e\n"
    # the sandbox was not rebuilt: its background process lived through the restart
    assert "sleep 7777.5" in sbs[0].sh("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert sbs[1].shell("sleep 20")["timedOut"] is True  # limits still applied


def test_created_then_killed(forged_fn):
    c = forged_fn.client
    sb = c.create()
    forged_fn.kill9()
    forged_fn.restart()
    assert sb.id in c.list_ids()
    assert sb.sh("echo works; id -u") == "works\n0\n"
    sb.upload("/root/after.txt", b"after restart")
    assert sb.download("/root/after.txt") == b"after restart"


def test_deleted_stays_deleted(forged_fn):
    c = forged_fn.client
    keep = c.create()
    gone = c.create()
    assert c.delete(gone.id).status == 204
    forged_fn.kill9()
    forged_fn.restart()
    assert c.list_ids() == [keep.id]
    check_error(c.get(gone.id), 404, "sandbox_not_found")


def test_graceful_restart_keeps_sandboxes(forged_fn):
    c = forged_fn.client
    sb = c.create()
    data = _populate(sb, "graceful")
    rc = forged_fn.stop()
    assert rc == 0, "forged did not exit cleanly on SIGTERM: %r" % rc
    forged_fn.start()
    assert sb.id in c.list_ids()
    _check_populated(sb, "graceful", data)


def test_two_restarts_in_a_row(forged_fn):
    c = forged_fn.client
    sb = c.create()
    sb.sh("echo 1 > n")
    for i in range(2, 4):
        forged_fn.kill9()
        forged_fn.restart()
        sb.sh("echo $(( $(cat n) + 1 )) > n")
    assert sb.sh("cat n") == "3\n"
    assert c.health().json()["sandboxes"] == 1


def test_reconcile_removes_stray_directory(forged_fn):
    stray = os.path.join(forged_fn.state_dir, "sandboxes", "zzstray001")
    os.makedirs(os.path.join(stray, "upper", "root"))
    with open(os.path.join(stray, "upper", "root", "junk"), "w") as f:
        f.write("junk")
    forged_fn.kill9()
    forged_fn.restart()
    assert not os.path.exists(stray), "stray sandbox directory survived reconcile"
    assert "zzstray001" not in forged_fn.client.list_ids()
    check_error(forged_fn.client.get("zzstray001"), 404, "sandbox_not_found")


def test_reconcile_survives_corrupt_record(forged_fn):
    c = forged_fn.client
    good = c.create()
    bad = os.path.join(forged_fn.state_dir, "sandboxes", "zzcorrupt1")
    os.makedirs(bad)
    with open(os.path.join(bad, "sandbox.json"), "w") as f:
        f.write('{"id": "zzcorrupt1", "status": ')
    forged_fn.kill9()
    forged_fn.restart()
    assert c.health().status == 200
    listed = {s["id"]: s for s in c.list()}
    assert good.id in listed and listed[good.id]["status"] == "running"
    assert good.sh("echo ok") == "ok\n"
    if "zzcorrupt1" in listed:  # kept as a failed record: it must say why
        assert listed["zzcorrupt1"]["status"] == "failed" and listed["zzcorrupt1"]["reason"]


def _pidns(pid):
    try:
        return os.readlink("/proc/%d/ns/pid" % pid)
    except OSError:
        return None


def test_record_of_dead_sandbox_is_failed_or_recovered(forged_fn):
    """A sandbox whose processes died while forged was down comes back working or is
    reported failed with a reason, never silently broken."""
    c = forged_fn.client
    sb = c.create()
    marker = "sleep 6161.5"
    sb.sh("%s > /dev/null 2>&1 &" % marker)
    pids = wait_until(lambda: host_pids_matching(marker))  # cmdline is empty mid-exec
    assert pids
    ns = _pidns(pids[0])
    assert ns and ns != _pidns(os.getpid()), "sandbox shares the host pid namespace"
    forged_fn.kill9()
    # kill every process of the sandbox's pid namespace (never one of ours: checked above)
    victims = [int(p) for p in os.listdir("/proc") if p.isdigit() and _pidns(int(p)) == ns]
    assert victims
    for p in victims:
        try:
            os.kill(p, 9)
        except ProcessLookupError:
            pass
    forged_fn.restart()
    r = c.get(sb.id)
    assert r.status == 200, r.describe()
    doc = check_sandbox(r.json())
    if doc["status"] == "failed":
        assert doc["reason"]
        check_error(sb.shell_raw({"command": "true"}), 409, "sandbox_not_running")
    else:
        assert doc["status"] == "running"
        assert sb.sh("echo back") == "back\n"


def test_kill9_mid_command(forged_fn):
    c = forged_fn.client
    sb = c.create()
    done = threading.Event()

    def long_call():
        try:
            sb.shell_raw({"command": "sleep 3; echo finished > /root/mid"}, timeout=30)
        except OSError:
            pass
        done.set()

    t = threading.Thread(target=long_call, daemon=True)
    t.start()
    time.sleep(0.7)
    forged_fn.kill9()
    assert done.wait(10), "the HTTP call did not end when forged died"
    forged_fn.restart()
    assert sb.id in c.list_ids()
    assert sb.sh("echo alive") == "alive\n"


def test_kill9_mid_upload(forged_fn):
    """An upload cut by kill -9 never leaves a half-written file in place."""
    c = forged_fn.client
    sb = c.create()
    sb.put_file("/root/up.bin", b"old content")
    listing = sb.sh("ls -A /root")
    head = ("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (sb.path("/files?path=" + q("/root/up.bin")), 50 * MiB)).encode()
    with socket.create_connection((c.host, c.port), timeout=20) as s:
        s.sendall(head)
        for _ in range(5):
            s.sendall(b"n" * MiB)
        time.sleep(0.3)
        forged_fn.kill9()
    forged_fn.restart()
    assert sb.get_file("/root/up.bin") == b"old content"
    assert sb.sh("ls -A /root") == listing, "temporary upload file left behind"


def test_record_is_json_under_state_dir(forged_fn):
    sb = forged_fn.client.create({"name": "on-disk"})
    path = os.path.join(forged_fn.state_dir, "sandboxes", sb.id, "sandbox.json")
    with open(path) as f:
        rec = json.load(f)
    assert json.dumps(rec).find("on-disk") >= 0
