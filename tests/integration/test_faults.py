"""kill -9 at every step of creating and destroying a sandbox, during a command and during
an upload (SECURITY.md "Gateway"; docs/security.md "Gateway and faults").

`forged-faults` is forged compiled again with -DFORGE_FAULTS: when the environment
variable FORGE_FAULT names a FAULT_POINT() it reaches, it SIGKILLs itself right there
(src/basic/fault.h). Each test runs it on a fresh state dir, drives it into the fault,
then starts the release forged on the same state dir and checks that every sandbox is
back and working or listed as failed with a reason, and that nothing leaked: no mount,
no cgroup, no process, no uid range, no temporary file.
"""

import json
import os
import signal
import socket
import threading
import time

import pytest

from forge_client import MiB, check_error, check_sandbox, host_pids_matching, q, upper_dir, wait_until

UID_RANGE_BASE = 0x40000000
UID_RANGE_SIZE = 65536


# --- driving forged-faults ------------------------------------------------------------


def start_faulty(f, fault, monkeypatch):
    """Restart `f` (a conftest Forged) as forged-faults with FORGE_FAULT=fault."""
    normal = f.binary
    f.stop()
    f.binary = os.path.join(f.bin_dir, "forged-faults")
    assert os.access(f.binary, os.X_OK), "%s missing: `make all` builds it" % f.binary
    monkeypatch.setenv("FORGE_FAULT", fault)
    try:
        f.start()
    finally:
        monkeypatch.delenv("FORGE_FAULT")
        f.binary = normal


def expect_fault(f, fault):
    """forged-faults must have died of SIGKILL at `fault`, not of anything else."""
    f.proc.wait(timeout=20)
    assert f.proc.returncode == -signal.SIGKILL, \
        "forged-faults exited with %r, not SIGKILL" % f.proc.returncode
    assert "FORGE_FAULT hit: %s\n" % fault in f.log_tail(), "fault point %s not reached" % fault


def call_dies(fn):
    """Run a request that the fault cuts off: it must fail with a broken connection."""
    try:
        r = fn()
    except OSError:  # http.client's RemoteDisconnected is a ConnectionResetError
        return
    pytest.fail("the request was answered although forged died: %s" % r.describe())


# --- what a sandbox may leave on the host ---------------------------------------------


def cgroup_group(state_dir):
    """forge-<FNV-1a of the state dir's real path>: this forged's cgroup group, ns
    sandboxes' and VMs' alike (cgroup_group_name() in src/daemon/isolator/cgroup.c)."""
    h = 2166136261
    for b in os.path.realpath(state_dir).encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return "forge-%08x" % h


def group_dirs(state_dir):
    """Every directory of this forged's group, in every cgroup hierarchy."""
    name = cgroup_group(state_dir)
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        if os.path.basename(root) == name:
            found.append(root)
            dirs[:] = []
        else:
            dirs[:] = [d for d in dirs if not d.startswith("forge-") or d == name]
    return found


def sandbox_cgroups(state_dir):
    """{sandbox id: [cgroup dirs]} under this forged's group."""
    out = {}
    for g in group_dirs(state_dir):
        for e in os.listdir(g):
            if os.path.isdir(os.path.join(g, e)):
                out.setdefault(e, []).append(os.path.join(g, e))
    return out


def uid_slot(state_dir, sid):
    for where in ("sandboxes", "trash"):
        try:
            with open(os.path.join(state_dir, where, sid, "sandbox.json")) as f:
                return json.load(f).get("uid_slot", 0)
        except (OSError, ValueError):
            pass
    return 0


def procs_in_uid_range(state_dir, slot):
    """Host pids whose uid is in the slot's range and that are not another forged's
    (other daemons on this host, e.g. a parallel test run, reuse the same slots)."""
    lo = UID_RANGE_BASE + slot * UID_RANGE_SIZE
    ours = cgroup_group(state_dir)
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/status" % p) as f:
                uids = [ln for ln in f if ln.startswith("Uid:")][0].split()[1:]
            with open("/proc/%s/cgroup" % p) as f:
                cg = f.read()
        except (OSError, IndexError):
            continue
        if not any(lo <= int(u) < lo + UID_RANGE_SIZE for u in uids):
            continue
        if "/forge-" in cg and "/%s/" % ours not in cg and "/%s\n" % ours not in cg:
            continue  # in another forged's group
        out.append(int(p))
    return out


def mounts_under(state_dir, sid=None):
    real = os.path.realpath(state_dir)
    with open("/proc/self/mountinfo") as f:
        return [ln for ln in f if real in ln or (sid and sid in ln)]


def assert_no_leak(f, sid, slot):
    """Nothing of sandbox `sid` is left on the host."""
    assert not mounts_under(f.state_dir, sid), mounts_under(f.state_dir, sid)
    assert sid not in sandbox_cgroups(f.state_dir), sandbox_cgroups(f.state_dir)
    assert wait_until(lambda: not procs_in_uid_range(f.state_dir, slot), timeout=5), \
        "processes left in uid slot %d: %r" % (slot, procs_in_uid_range(f.state_dir, slot))


def assert_all_clean(f):
    """No sandbox at all: no record, no trash, no cgroup, no process, no mount."""
    assert f.client.list_ids() == []
    for where in ("sandboxes", "trash"):
        assert os.listdir(os.path.join(f.state_dir, where)) == [], where
    assert sandbox_cgroups(f.state_dir) == {}
    assert not mounts_under(f.state_dir)
    assert wait_until(lambda: not procs_in_uid_range(f.state_dir, 0), timeout=5)


def uid_base_inside(sb):
    """The host uid that root inside the sandbox maps to."""
    return int(sb.sh("cat /proc/self/uid_map").split()[1])


def check_works(sb, tag):
    assert sb.sh("echo %s; id -u" % tag) == "%s\n0\n" % tag
    sb.put_file("/root/%s.bin" % tag, tag.encode() * 1000)
    assert sb.get_file("/root/%s.bin" % tag) == tag.encode() * 1000


def check_slots_reused(f):
    """After every sandbox is gone, a new one gets the first uid range again."""
    sb = f.client.create()
    check_works(sb, "fresh")
    assert uid_base_inside(sb) == UID_RANGE_BASE
    assert f.client.delete(sb.id).status == 204
    assert_all_clean(f)


# --- kill -9 at each step of creation ------------------------------------------------

# In order. Until the record says `running` the client never had the sandbox's id.
CREATE_STEPS = [
    "create.dir_made",                # directory made, no record yet
    "create.record_saved",            # record `creating`, nothing else
    "create.before_isolator_create",  # on the worker thread
    "create.after_isolator_create",   # dirs and cgroups made, no process
    "create.after_start",             # agent running, record still `creating`
    "create.before_save_running",     # back on the loop, record still `creating`
    "create.after_save_running",      # record `running`, the client got no answer
]


@pytest.mark.parametrize("step", CREATE_STEPS)
def test_kill9_during_create(forged_fn, monkeypatch, step):
    f = forged_fn
    start_faulty(f, step, monkeypatch)
    call_dies(lambda: f.client.request("POST", "/v1/sandboxes", timeout=30))
    expect_fault(f, step)
    left = os.listdir(os.path.join(f.state_dir, "sandboxes"))
    assert len(left) == 1, left
    sid = left[0]
    slot = uid_slot(f.state_dir, sid)

    f.start()
    listed = {s["id"]: s for s in f.client.list()}
    if step == "create.dir_made":
        # No record was written: nothing to report, everything to remove.
        assert listed == {}
        assert not os.path.exists(os.path.join(f.state_dir, "sandboxes", sid))
        assert_no_leak(f, sid, slot)
    else:
        assert sid in listed, "sandbox %s lost: %r" % (sid, listed)
        doc = check_sandbox(listed[sid])
        sb = f.client.sandbox(sid)
        if step == "create.after_save_running":
            assert doc["status"] == "running", doc
        if doc["status"] == "failed":
            assert doc["reason"], doc
            check_error(sb.shell_raw({"command": "true"}), 409, "sandbox_not_running")
            # a failed sandbox holds nothing but its files on disk
            assert_no_leak(f, sid, slot)
        else:
            assert doc["status"] == "running", doc
            check_works(sb, "back")
            assert sid in sandbox_cgroups(f.state_dir)  # the leak probe sees real cgroups
            assert procs_in_uid_range(f.state_dir, slot)  # ...and real processes
        # the uid range is still taken: a second sandbox gets the next one and works
        other = f.client.create()
        check_works(other, "other")
        assert uid_base_inside(other) == UID_RANGE_BASE + UID_RANGE_SIZE
        assert f.client.delete(other.id).status == 204
        assert f.client.delete(sid).status == 204
        assert_no_leak(f, sid, slot)
    assert_all_clean(f)
    check_slots_reused(f)


# --- kill -9 during destroy ------------------------------------------------------------

DESTROY_STEPS = ["destroy.before_isolator_destroy", "destroy.after_isolator_destroy"]


@pytest.mark.parametrize("step", DESTROY_STEPS)
def test_kill9_during_destroy(forged_fn, monkeypatch, step):
    f = forged_fn
    start_faulty(f, step, monkeypatch)
    sb = f.client.create()
    sb.sh("echo data > /root/data; sleep 8282.5 > /dev/null 2>&1 &")
    assert wait_until(lambda: host_pids_matching("sleep 8282.5"))  # fork to exec takes a moment
    call_dies(lambda: f.client.delete(sb.id))
    expect_fault(f, step)

    f.start()  # reconcile finishes the destroy from the trash
    check_error(f.client.get(sb.id), 404, "sandbox_not_found")
    assert_no_leak(f, sb.id, 0)
    assert not host_pids_matching("sleep 8282.5")
    assert_all_clean(f)
    check_slots_reused(f)


# --- kill -9 during a command ---------------------------------------------------------


def test_kill9_during_long_command(forged_fn):
    f = forged_fn
    sb = f.client.create()
    data = os.urandom(256 * 1024)
    sb.put_file("/root/keep.bin", data)
    sb.sh("mkdir -p work && echo notes > work/notes; sleep 7373.5 > /dev/null 2>&1 &")
    ended = threading.Event()

    def long_call():
        try:
            sb.shell_raw({"command": "sleep 4.75; echo finished > /root/late"}, timeout=30)
        except OSError:
            pass
        ended.set()

    t = threading.Thread(target=long_call, daemon=True)
    t.start()
    assert wait_until(lambda: host_pids_matching("sleep 4.75"), timeout=10)
    f.kill9()
    assert ended.wait(10), "the HTTP call did not end when forged died"
    f.start()

    doc = check_sandbox(sb.get())
    assert doc["status"] == "running", doc
    assert sb.get_file("/root/keep.bin") == data
    assert sb.sh("cat work/notes") == "notes\n"
    # not rebuilt: a process started before the crash is still there
    assert "sleep 7373.5" in sb.sh("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    res = sb.shell("echo new; exit 3")
    assert (res["stdout"], res["exitCode"]) == ("new\n", 3)
    assert f.client.delete(sb.id).status == 204
    assert_no_leak(f, sb.id, 0)
    assert not host_pids_matching("sleep 7373.5") and not host_pids_matching("sleep 4.75")
    assert_all_clean(f)


# --- kill -9 during an upload ---------------------------------------------------------

OLD = b"old content\n"


def put_head(sb, path, length):
    return ("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            "Content-Length: %d\r\n\r\n" % (sb.path("/files?path=" + q(path)), length)).encode()


def send_upload(f, sb, path, body):
    """Stream `body` as a PUT; forged dies somewhere along the way."""
    try:
        with socket.create_connection((f.client.host, f.client.port), timeout=20) as s:
            s.sendall(put_head(sb, path, len(body)))
            for i in range(0, len(body), 64 * 1024):
                s.sendall(body[i:i + 64 * 1024])
            s.recv(4096)
    except OSError:  # refused, reset or cut: forged is dying
        pass


def temp_files(sb):
    """Anything in /root/up besides the expected names: the writer's temporaries."""
    return [n for n in sb.sh("ls -A /root/up").split() if n not in ("old.bin", "new.bin")]


# (fault point, may the new content replace the old?)
UPLOAD_STEPS = [
    ("upload.chunk_sent", False),     # the first piece reached the agent
    ("upload.body_received", False),  # the whole body reached forged, not yet committed
    ("upload.committed", True),       # the agent renamed it into place, no answer sent
]


@pytest.mark.parametrize("step,may_commit", UPLOAD_STEPS)
def test_kill9_during_upload(forged_fn, monkeypatch, step, may_commit):
    f = forged_fn
    start_faulty(f, step, monkeypatch)
    sb = f.client.create()
    sb.sh("mkdir -p /root/up")
    sb.upload("/root/up/old.bin", OLD)  # the JSON route has no fault point
    new = os.urandom(4 * MiB)
    threads = [threading.Thread(target=send_upload, args=(f, sb, p, new), daemon=True)
               for p in ("/root/up/old.bin", "/root/up/new.bin")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    expect_fault(f, step)

    f.start()
    old_now = sb.get_file("/root/up/old.bin")
    new_r = sb.get_file_raw("/root/up/new.bin")
    if may_commit:  # whole or not at all, never a mix
        assert old_now in (OLD, new)
        assert new_r.status == 404 or new_r.body == new
    else:
        assert old_now == OLD
        check_error(new_r, 404)
    assert wait_until(lambda: temp_files(sb) == [], timeout=5), \
        "temporary upload files left: %r" % temp_files(sb)
    # the same upload works now
    assert sb.put_file("/root/up/old.bin", new)["size"] == len(new)
    assert sb.get_file("/root/up/old.bin") == new
    assert temp_files(sb) == []
    assert f.client.delete(sb.id).status == 204
    assert_all_clean(f)


def test_kill9_mid_body_of_streamed_upload(forged_fn):
    """Killed from outside while the body is still arriving (no fault point)."""
    f = forged_fn
    sb = f.client.create()
    sb.sh("mkdir -p /root/up")
    sb.put_file("/root/up/old.bin", OLD)
    with socket.create_connection((f.client.host, f.client.port), timeout=20) as s:
        s.sendall(put_head(sb, "/root/up/old.bin", 64 * MiB))
        for _ in range(6):
            s.sendall(b"p" * MiB)
        # wait until the agent has begun writing the temporary file
        assert wait_until(lambda: any(n.startswith(".old.bin.")
                                      for n in _host_ls(f, sb.id, "root/up")), timeout=10)
        f.kill9()
    f.start()
    assert sb.get_file("/root/up/old.bin") == OLD
    assert wait_until(lambda: temp_files(sb) == [], timeout=5), temp_files(sb)
    assert f.client.delete(sb.id).status == 204
    assert_all_clean(f)


def _host_ls(f, sid, rel):
    """List a directory of the sandbox's writable layer from the host (read only)."""
    try:
        return os.listdir(os.path.join(upper_dir(f.state_dir, sid), rel))
    except OSError:
        return []
