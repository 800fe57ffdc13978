"""The qemu isolator (docs/isolator-qemu.md): a microVM per sandbox, TCG on these hosts.

A boot under TCG costs seconds, so the checks share one VM sandbox on one forged (module
scope) and run in file order: the restart and destroy checks come last. The guest parts
are prepared once per host with `forgectl vm setup` into FORGE_VM_CACHE (default
/var/tmp/forge-test-vm; a second run only checks they are current) and each test state
dir links to them."""

import errno
import base64
import hashlib
import http.client
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from forge_client import PS_SNIPPET, check_error, check_result, host_pids_matching, wait_until
from test_compat_sandbox import RawFetch, _execute as compat_execute, _shell as compat_shell
from test_processes import WebSocket, follow
from test_faults import cgroup_group, group_dirs, procs_in_uid_range, sandbox_cgroups, uid_slot

VM_CACHE = os.environ.get("FORGE_VM_CACHE", "/var/tmp/forge-test-vm")
BOOT_TIMEOUT = 240
MiB = 1024 * 1024
# src/daemon/isolator/qemu/qemu-internal.h: a VM's host cgroup (docs/isolator-qemu.md, "Limits")
QEMU_TCG_TB_SIZE_MB = 256
QEMU_MEMORY_BASE_MB = 192
QEMU_MEMORY_PER_GUEST_DIV = 16
QEMU_PIDS_BASE = 128
# limits.pids of the shared VM: far above what the tests run, so only the checks of the
# guest's pids cgroup notice it (src/agent/vm.h: the commands' cgroup)
VM_PIDS = 256
GUEST_CGROUP = "/sys/fs/cgroup/sandbox"


@pytest.fixture(scope="module")
def guest_parts(forged):
    forgectl = os.path.join(forged.bin_dir, "forgectl")
    r = subprocess.run([forgectl, "vm", "setup", "--state-dir", VM_CACHE],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    return os.path.join(VM_CACHE, "vm")


def link_guest_parts(state_dir, guest_parts):
    """Gives a forged the guest parts, but a vm dir of its own: the image disks it makes
    (images/<name>.ext4, remade when its image's rootfs is newer, as every new forged's
    host image is) must not replace the ones another forged's VMs and snapshots were
    made with (another test's, or another test run's on this host)."""
    vm_dir = os.path.join(state_dir, "vm")
    os.mkdir(vm_dir)
    for name in ("vmlinuz", "initramfs.img", "binds"):
        os.symlink(os.path.join(guest_parts, name), os.path.join(vm_dir, name))
    return vm_dir


@pytest.fixture(scope="module")
def vm_forged(forged, guest_parts):
    link_guest_parts(forged.state_dir, guest_parts)
    return forged


@pytest.fixture(scope="module")
def vm(vm_forged):
    sb = vm_forged.client.create({"isolator": "qemu", "limits": {"memory_mb": 384, "pids": VM_PIDS}},
                                 timeout=BOOT_TIMEOUT)
    yield sb
    vm_forged.client.delete(sb.id)


def qmp(state_dir, sid, command):
    """One QMP command on the sandbox's control socket, as forged sends them."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(os.path.join(state_dir, "sandboxes", sid, "qmp.sock"))
    f = s.makefile("rwb")
    answers = []
    for msg in (None, "qmp_capabilities", command):
        if msg:
            f.write(json.dumps({"execute": msg}).encode() + b"\n")
            f.flush()
        while True:
            doc = json.loads(f.readline())
            if "event" not in doc:
                answers.append(doc)
                break
    s.close()
    return answers[-1]


def qemu_pid(sid):
    pids = host_pids_matching("forge-%s" % sid)
    assert len(pids) == 1, pids
    return pids[0]


def cgroup_lines(pid):
    """/proc/PID/cgroup as {hierarchy line's controllers: path}."""
    with open("/proc/%d/cgroup" % pid) as f:
        return dict(line.rstrip("\n").split(":", 2)[1:] for line in f)


def is_in_vm_cgroup(pid, state_dir, sid):
    """In <forged's cgroup>/<group>/<sid> in every hierarchy forged uses (v1 memory,
    cpu, pids and v2 here; v2 alone elsewhere)."""
    suffix = "/%s/%s" % (cgroup_group(state_dir), sid)
    used = [path for controllers, path in cgroup_lines(pid).items()
            if controllers in ("", "memory", "cpu", "cpuacct", "cpu,cpuacct", "pids", "freezer")]
    return bool(used) and all(path.endswith(suffix) for path in used)


def vm_cgroup_knob(state_dir, sid, *names):
    """The first of names found in the sandbox's cgroup dirs: (name, stripped text)."""
    for name in names:
        for d in sandbox_cgroups(state_dir).get(sid, []):
            try:
                with open(os.path.join(d, name)) as f:
                    return name, f.read().strip()
            except OSError:
                pass
    return None, None


def host_oom_kills(state_dir, sid):
    name, text = vm_cgroup_knob(state_dir, sid, "memory.events", "memory.oom_control")
    return int(dict(line.split() for line in text.splitlines())["oom_kill"])


def expected_memory_limit_mb(memory_mb):
    kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
    return memory_mb + QEMU_MEMORY_BASE_MB + memory_mb // QEMU_MEMORY_PER_GUEST_DIV + \
        (0 if kvm else QEMU_TCG_TB_SIZE_MB)


def guest_kernel_version(guest_parts):
    return os.listdir(os.path.join(guest_parts, "kernel", "lib", "modules"))[0]


def test_health_lists_qemu(vm_forged):
    r = vm_forged.client.request("GET", "/health")
    h = r.json()
    assert "qemu" in h["isolators"] and "ns" in h["isolators"], h


def test_shell_runs_the_guest_kernel(vm, guest_parts):
    info = vm.get()
    assert info["isolator"] == "qemu" and info["status"] == "running", info
    res = check_result(vm.shell("uname -r; hostname"))
    release, hostname = res["stdout"].split()
    assert release == guest_kernel_version(guest_parts)
    assert release != platform.release()
    assert hostname == vm.id


def guest_clock_offset(sb):
    """The guest's wall clock minus the host's, in seconds (the host's read around the
    call, so the call's own time does not count against the guest)."""
    before = time.time()
    guest = float(sb.sh("date +%s.%N"))
    after = time.time()
    if guest < before:
        return guest - before
    return max(0.0, guest - after)


def test_guest_clock_and_pids_cgroup_after_boot(vm):
    """After a boot the guest's clock is the host's, and limits.pids (given on the
    kernel command line) is pids.max of the cgroup every command runs in; the agent,
    PID 1, stays outside it."""
    assert abs(guest_clock_offset(vm)) < 2
    out = vm.sh("cat %s/pids.max; cat /proc/self/cgroup; cat /proc/1/cgroup" % GUEST_CGROUP)
    assert out.split() == [str(VM_PIDS), "0::/sandbox", "0::/"], out


def test_qemu_runs_unprivileged_under_seccomp(vm):
    pids = host_pids_matching("forge-%s" % vm.id)
    assert len(pids) == 1, pids
    with open("/proc/%d/status" % pids[0]) as f:
        status = dict(line.split(":", 1) for line in f)
    uids = status["Uid"].split()
    assert len(set(uids)) == 1 and int(uids[0]) >= 100000, status["Uid"]
    assert status["Seccomp"].strip() == "2", status["Seccomp"]


def test_qemu_is_in_the_sandbox_cgroup_with_limits(vm, vm_forged):
    """QEMU and every thread of it are in <forged's cgroup>/<group>/<id> in every
    hierarchy, limited to limits.cpus, guest memory plus QEMU's overhead, and a fixed
    number of tasks."""
    pid = qemu_pid(vm.id)
    lines = cgroup_lines(pid)
    assert is_in_vm_cgroup(pid, vm_forged.state_dir, vm.id), lines
    for tid in os.listdir("/proc/%d/task" % pid):
        assert cgroup_lines(int(tid)) == lines, tid
    dirs = sandbox_cgroups(vm_forged.state_dir)[vm.id]
    for d in dirs:
        with open(os.path.join(d, "cgroup.procs")) as f:
            assert [int(p) for p in f.read().split()] == [pid], d
    info = vm.get()
    vcpus = math.ceil(info["limits"]["cpus"])
    limit = expected_memory_limit_mb(384) * MiB
    name, value = vm_cgroup_knob(vm_forged.state_dir, vm.id, "memory.max", "memory.limit_in_bytes")
    assert int(value) == limit, (name, value, limit)
    name, value = vm_cgroup_knob(vm_forged.state_dir, vm.id, "memory.memsw.limit_in_bytes",
                                 "memory.swap.max")
    assert value is None or int(value) in (limit, 0), (name, value)  # swap off
    name, value = vm_cgroup_knob(vm_forged.state_dir, vm.id, "cpu.max", "cpu.cfs_quota_us")
    assert value.split()[0] == str(int(info["limits"]["cpus"] * 100000)), (name, value)
    assert vm_cgroup_knob(vm_forged.state_dir, vm.id, "pids.max")[1] == str(QEMU_PIDS_BASE + vcpus)
    # GET's usage is the cgroup's: QEMU's tasks, its memory, its CPU time
    usage = info["usage"]
    assert 1 + vcpus <= usage["pids"] <= QEMU_PIDS_BASE + vcpus, usage
    assert 32 * MiB < usage["memory_bytes"] <= limit, usage
    assert usage["cpu_usec"] > 500000, usage  # a TCG boot alone takes seconds of CPU
    assert usage["disk_bytes"] > 0, usage


def test_vm_is_not_a_stray_of_another_forged(vm, vm_forged, forged_fn):
    """The leak probes of the tests (test_faults.py) tell a VM of another forged from a
    leftover by its cgroup: QEMU runs in the sandbox's uid range, but in its own
    forged's group."""
    pid = qemu_pid(vm.id)
    slot = uid_slot(vm_forged.state_dir, vm.id)
    assert pid in procs_in_uid_range(vm_forged.state_dir, slot)
    assert pid not in procs_in_uid_range(forged_fn.state_dir, slot)


def test_execute_python_and_node(vm):
    res = check_result(vm.execute("import sys; print(sys.version_info[0] * 7)", "python"))
    assert res["stdout"] == "21\n", res
    res = check_result(vm.execute("console.log([1, 2, 3].length)", "node"))
    assert res["stdout"] == "3\n", res


def test_files_up_and_down(vm):
    data = os.urandom(8 << 20)  # many frames and credit windows through virtio-serial
    vm.put_file("/root/blob.bin", data)
    assert vm.get_file("/root/blob.bin") == data
    assert vm.sh("sha256sum /root/blob.bin").split()[0] == hashlib.sha256(data).hexdigest()
    names = [e["name"] for e in vm.list_dir("/root")["entries"]]
    assert "blob.bin" in names


def test_background_process(vm):
    r = vm.req("POST", "/processes", {"command": "echo started; sleep 3600"})
    assert r.status == 201, r.describe()
    pid = r.json()["pid"]
    assert wait_until(lambda: "started" in vm.req("GET", "/processes/%d/output" % pid).body.decode())
    assert vm.req("GET", "/processes/%d" % pid).json()["status"] == "running"
    assert "sleep 3600" in vm.sh(PS_SNIPPET)


def test_output_stream_follows(vm):
    r = vm.req("POST", "/processes", {"command": "for i in 1 2 3; do echo line$i; sleep 0.2; done"})
    assert r.status == 201, r.describe()
    conn = http.client.HTTPConnection(vm.client.host, vm.client.port, timeout=60)
    conn.request("GET", vm.path("/processes/%d/output?follow=1" % r.json()["pid"]))
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("content-type").startswith("text/event-stream")
    events, event = [], {}
    while not events or events[-1][0] != "exit":
        line = resp.readline().decode()
        assert line, "stream ended before the exit event: %r" % events
        line = line.rstrip("\n")
        if not line:
            if event:
                events.append((event.get("event"), json.loads(event["data"])))
            event = {}
        elif not line.startswith(":"):
            k, _, v = line.partition(":")
            event[k] = v.lstrip(" ")
    conn.close()
    text = "".join(d["data"] for e, d in events if e == "stdout")
    assert text == "line1\nline2\nline3\n", events
    assert events[-1][1]["exit_code"] == 0, events


def test_pty_process(vm):
    r = vm.req("POST", "/processes", {"command": "tty; stty size", "pty": {"rows": 33, "cols": 101}})
    assert r.status == 201 and r.json()["pty"] is True, r.describe()
    pid = r.json()["pid"]
    assert wait_until(lambda: vm.req("GET", "/processes/%d" % pid).json()["status"] != "running")
    out = vm.req("GET", "/processes/%d/output" % pid).json()["stdout"]
    assert re.match(r"^/dev/pts/\d+\r\n33 101\r\n$", out), out


def test_attach_websocket(vm, vm_forged):
    """The terminal WebSocket to a PTY process in a VM: output, input, resize, exit."""
    r = vm.req("POST", "/processes", {"command": "tty; read line; echo \"got $line\"; stty size",
                                      "pty": {"rows": 24, "cols": 80}})
    assert r.status == 201, r.describe()
    pid = r.json()["pid"]
    ws = WebSocket(vm_forged.client.host, vm_forged.client.port, vm.path("/processes/%d/attach" % pid))
    assert ws.status == 101, ws.head
    screen = b""
    while b"/dev/pts/" not in screen:
        op, data = ws.recv()
        assert op == 2, (op, data)
        screen += data
    ws.send(json.dumps({"type": "resize", "rows": 40, "cols": 120}))
    time.sleep(0.3)  # the resize is a request of its own to the agent: let it land first
    ws.send(b"hello\n")
    rest, exit_msg = ws.read_to_close()
    screen += rest
    assert b"got hello\r\n40 120\r\n" in screen, screen
    assert exit_msg == {**exit_msg, "type": "exit", "status": "exited", "pid": pid, "exit_code": 0}, exit_msg


def test_compat_client_gets_a_vm(forged_factory, guest_parts):
    """The SandboX client's calls, as test_compat_sandbox.py replays them, against a
    forged whose default isolator is qemu: each works in a VM."""
    f = forged_factory(["--isolator", "qemu"])
    link_guest_parts(f.state_dir, guest_parts)
    fetch = RawFetch(f.client)
    try:
        status, _, body = fetch.fetch("POST", "/v1/sandbox")
        sid = json.loads(body)["id"] if 200 <= status < 300 else pytest.fail("create: %d %r" % (status, body))
        assert f.client.get(sid).json()["isolator"] == "qemu"
        res = compat_shell(fetch, sid, "uname -r; echo oops >&2")
        assert (res["stdout"], res["stderr"], res["exitCode"]) == (guest_kernel_version(guest_parts) + "\n",
                                                                   "oops\n", 0), res
        assert compat_execute(fetch, sid, "print(6 * 7)", "python")["stdout"] == "42\n"
        data = bytes(range(256)) * 64
        status, _, body = fetch.fetch("POST", "/v1/sandbox/%s/upload" % sid,
                                      {"data": base64.b64encode(data).decode(), "path": "/root/blob"})
        assert 200 <= status < 300, (status, body)
        status, _, body = fetch.fetch("GET", "/v1/sandbox/%s/download?path=%%2Froot%%2Fblob" % sid)
        assert status == 200 and body == data, (status, len(body))
        status, _, _ = fetch.fetch("DELETE", "/v1/sandbox/%s" % sid)
        assert 200 <= status < 300
        assert f.client.get(sid).status == 404
    finally:
        fetch.close()


def test_suspend_pauses_the_vm_and_resume_continues(vm, vm_forged):
    r = vm.req("POST", "/suspend")
    assert r.status == 200 and r.json()["status"] == "suspended", r.describe()
    assert qmp(vm_forged.state_dir, vm.id, "query-status")["return"]["status"] == "paused"
    r = vm.req("POST", "/resume")
    assert r.status == 200 and r.json()["status"] == "running", r.describe()
    assert qmp(vm_forged.state_dir, vm.id, "query-status")["return"]["status"] == "running"
    assert vm.sh("echo alive") == "alive\n"


def test_clock_is_right_after_a_long_suspend(vm, vm_forged):
    """A paused VM's wall clock stands still; the resume sets it from the host's again
    (before the first call's command runs), by hand and by a transparent resume."""
    for resume in (lambda: vm.req("POST", "/resume"), lambda: None):
        assert vm.req("POST", "/suspend").status == 200
        time.sleep(4)
        resume()
        assert abs(guest_clock_offset(vm)) < 2


def test_guest_memory_work_does_not_kill_qemu(vm, vm_forged):
    """A guest that uses all of its memory (and asks for more: its own OOM killer or a
    MemoryError ends that) and churns its disk's page cache on the host stays within
    QEMU's cgroup limit: the host never OOM-kills the VM."""
    pid = qemu_pid(vm.id)
    hog = ("chunks = []\n"
           "while len(chunks) < 64:\n"
           "    chunks.append(b'x' * (16 << 20))\n")  # 1 GiB, far above the guest's 384 MiB
    res = vm.execute(hog, "python", timeout=300)
    assert res["exitCode"] != 0, res
    res = check_result(vm.shell("dd if=/dev/zero of=/root/churn bs=1M count=256 conv=fsync 2>/dev/null && "
                                "echo 3 > /proc/sys/vm/drop_caches && cat /root/churn > /dev/null && "
                                "rm /root/churn && echo done", timeout=300))
    assert res["stdout"] == "done\n", res
    assert qemu_pid(vm.id) == pid
    assert host_oom_kills(vm_forged.state_dir, vm.id) == 0
    assert vm.sh("echo alive") == "alive\n"
    # the whole guest RAM was in use at some point, and charged to the VM's cgroup
    usage = vm.get()["usage"]
    assert usage["memory_peak_bytes"] > 384 * MiB, usage
    assert usage["memory_peak_bytes"] <= expected_memory_limit_mb(384) * MiB, usage


def test_no_network_but_lo(vm):
    assert vm.sh("ls /sys/class/net") == "lo\n"


def test_guest_cannot_reach_forged(vm, vm_forged):
    code = ("import socket\n"
            "for host in ('127.0.0.1', '10.0.2.2'):\n"
            "    s = socket.socket()\n"
            "    s.settimeout(3)\n"
            "    try:\n"
            "        s.connect((host, %d)); print('reached', host)\n"
            "    except OSError as e:\n"
            "        print('no', host)\n" % vm_forged.port)
    res = check_result(vm.execute(code, "python"))
    assert res["stdout"] == "no 127.0.0.1\nno 10.0.2.2\n", res


def test_host_files_and_environment_not_visible(vm, vm_forged, tmp_path, host_token):
    secret = tmp_path / "host-only.txt"
    secret.write_text("host only")
    out = vm.sh("test -e %s && echo visible; test -e %s && echo state; "
                "test -e /etc/shadow && echo shadow; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'"
                % (secret, vm_forged.state_dir))
    assert "visible" not in out and "state" not in out and "shadow" not in out, out
    assert host_token not in out


TICKER = "i=0; while :; do i=$((i+1)); echo $i; echo $i > /root/ticks; sleep 0.2; done"


def ticks_printed(sb, pid):
    out = sb.req("GET", "/processes/%d/output" % pid).json()["stdout"]
    return [int(x) for x in out.split()]


def uptime(sb):
    return float(sb.sh("cut -d' ' -f1 /proc/uptime"))


def test_snapshot_restores_memory_and_processes(vm, vm_forged):
    """A VM snapshot carries the running machine: a sandbox made from it has the same
    kernel (its uptime goes on), and a process started before the snapshot is still
    running there, its in-memory counter going on from where it stood."""
    r = vm.req("POST", "/processes", {"command": TICKER})
    assert r.status == 201, r.describe()
    pid = r.json()["pid"]
    assert wait_until(lambda: len(ticks_printed(vm, pid)) >= 5, timeout=30)
    up_before = uptime(vm)
    r = vm.req("POST", "/snapshot", {"name": "ticking"})
    assert r.status == 201, r.describe()
    snap = r.json()
    assert snap["isolator"] == "qemu" and snap["memory"] is True and snap["memory_mb"] == 384, snap
    at_snapshot = max(ticks_printed(vm, pid))
    assert vm.req("GET", "/processes/%d" % pid).json()["status"] == "running"

    restored = vm_forged.client.create({"from_snapshot": snap["id"]}, timeout=BOOT_TIMEOUT)
    try:
        info = restored.get()
        assert info["isolator"] == "qemu" and info["limits"]["memory_mb"] == 384, info
        procs = restored.req("GET", "/processes").json()["processes"]
        assert [p["pid"] for p in procs if p["status"] == "running" and "/root/ticks" in " ".join(p["argv"])] == [pid], procs
        # the counter lives in the process's memory: it goes on, it does not start again
        assert wait_until(lambda: max(ticks_printed(restored, pid)) >= at_snapshot + 5, timeout=60)
        printed = ticks_printed(restored, pid)
        assert printed == list(range(1, len(printed) + 1)), printed
        first = int(restored.sh("cat /root/ticks"))
        assert wait_until(lambda: int(restored.sh("cat /root/ticks")) > first, timeout=30)
        assert uptime(restored) > up_before  # the same kernel, not a new boot
    finally:
        restored.delete()
    # the source ran on untouched
    assert max(ticks_printed(vm, pid)) > at_snapshot
    vm.req("DELETE", "/processes/%d" % pid)


def test_snapshot_restore_keeps_the_machine(vm, vm_forged):
    snap = vm.req("POST", "/snapshot", {}).json()
    for spec, code, word in (({"limits": {"memory_mb": 512}}, "invalid_request", "memory_mb"),
                             ({"limits": {"cpus": 2}}, "invalid_request", "cpus"),
                             ({"isolator": "ns"}, "invalid_request", "isolator qemu")):
        spec["from_snapshot"] = snap["id"]
        doc = check_error(vm_forged.client.request("POST", "/v1/sandboxes", spec), 400, code)
        assert word in doc["error"], doc
    # a machine this host would start differently (here: a rebuilt image disk) is refused
    snap_dir = os.path.join(vm_forged.state_dir, "snapshots", snap["id"])
    machine_path = os.path.join(snap_dir, "machine.json")
    with open(machine_path) as f:
        machine = json.load(f)
    with open(machine_path, "w") as f:
        json.dump(dict(machine, disks=dict(machine["disks"], image="1:2:3.000000000")), f)
    before = {sb["id"] for sb in vm_forged.client.list()}
    doc = check_error(vm_forged.client.request("POST", "/v1/sandboxes", {"from_snapshot": snap["id"]}),
                      409, "snapshot_incompatible")
    assert "'disks'" in doc["error"], doc
    # a damaged stream: QEMU exits while loading it, the create fails and leaves nothing
    with open(machine_path, "w") as f:
        json.dump(machine, f)
    os.truncate(os.path.join(snap_dir, "memory"), 4096)
    r = vm_forged.client.request("POST", "/v1/sandboxes", {"from_snapshot": snap["id"]}, timeout=BOOT_TIMEOUT)
    doc = check_error(r, 500, "isolator_failed")
    assert "could not load the snapshot" in doc["error"], doc
    assert {sb["id"] for sb in vm_forged.client.list()} == before
    assert len(host_pids_matching(os.path.join(vm_forged.state_dir, "sandboxes"))) == 1
    assert vm_forged.client.request("DELETE", "/v1/snapshots/" + snap["id"]).status == 204


def test_snapshot_of_a_suspended_vm_twice(vm, vm_forged):
    # QEMU 7.2 will not save a VM again straight after saving it; the isolator copes
    assert vm.req("POST", "/suspend").status == 200
    ids = []
    for _ in range(2):
        r = vm.req("POST", "/snapshot", {})
        assert r.status == 201, r.describe()
        ids.append(r.json()["id"])
    # stopped still ("postmigrate" is QEMU's word for stopped after a save)
    assert qmp(vm_forged.state_dir, vm.id, "query-status")["return"]["running"] is False
    assert vm.get()["status"] == "suspended"
    assert vm.sh("echo alive") == "alive\n"  # resumes it
    for sid in ids:
        assert vm_forged.client.request("DELETE", "/v1/snapshots/" + sid).status == 204


def test_fork_of_a_vm_is_independent(vm, vm_forged):
    r = vm.req("POST", "/processes", {"command": TICKER})
    pid = r.json()["pid"]
    assert wait_until(lambda: len(ticks_printed(vm, pid)) >= 3, timeout=30)
    vm.sh("echo source > /root/side")
    r = vm.req("POST", "/fork", {}, timeout=BOOT_TIMEOUT)
    assert r.status == 201, r.describe()
    fork = vm_forged.client.sandbox(r.json()["id"])
    try:
        assert fork.get()["isolator"] == "qemu"
        assert fork.sh("hostname") == fork.id + "\n"  # its own, not the source's
        assert fork.sh("cat /root/side") == "source\n"
        fork.sh("echo fork > /root/side; echo only > /root/fork-only")
        assert vm.sh("cat /root/side; ls /root/fork-only 2>&1 >/dev/null | wc -l") == "source\n1\n"
        # the fork has the process too; ending it there leaves the source's running
        assert wait_until(lambda: fork.req("GET", "/processes/%d" % pid).status == 200, timeout=30)
        assert fork.req("DELETE", "/processes/%d" % pid).status in (200, 204)
        assert wait_until(lambda: fork.req("GET", "/processes/%d" % pid).json()["status"] != "running")
        n = max(ticks_printed(vm, pid))
        assert wait_until(lambda: max(ticks_printed(vm, pid)) > n, timeout=30)
        assert not os.path.exists(os.path.join(vm_forged.state_dir, "sandboxes", fork.id, "fork"))
    finally:
        fork.delete()
    vm.req("DELETE", "/processes/%d" % pid)


def hibernation_dir(state_dir, sid):
    return os.path.join(state_dir, "sandboxes", sid, "hibernation")


def test_hibernate_frees_the_vm_and_wakes_it_where_it_was(vm, vm_forged):
    """A hibernated VM is a file: no QEMU runs for it, across a forged restart too; a
    snapshot can still be taken of it; the next call loads it and its processes go on
    with their memory (an in-shell counter continues, it does not start over)."""
    r = vm.req("POST", "/processes", {"command": TICKER})
    assert r.status == 201, r.describe()
    pid = r.json()["pid"]
    assert wait_until(lambda: len(ticks_printed(vm, pid)) >= 3, timeout=30)
    vm.sh("echo slept > /root/slept.txt")
    assert len(host_pids_matching("forge-%s" % vm.id)) == 1
    # a follower would lose its agent connection with the machine: not while one is there
    follower = follow(vm, pid)
    check_error(vm.req("POST", "/suspend", {"hibernate": True}), 409, "sandbox_busy")
    follower.close()
    # forged sees the follower go on a later turn of its loop
    assert wait_until(lambda: vm.req("POST", "/suspend", {"hibernate": True}, timeout=BOOT_TIMEOUT).status == 200,
                      timeout=10)

    info = vm.get()
    assert info["status"] == "suspended" and info["hibernated"] is True and info["reason"] == "client", info
    assert host_pids_matching("forge-%s" % vm.id) == []
    assert os.path.getsize(os.path.join(hibernation_dir(vm_forged.state_dir, vm.id), "memory")) > MiB
    # its host cgroup stays, and empties (QEMU's tasks leave it when reaped, just after)
    assert wait_until(lambda: vm.get()["usage"]["pids"] == 0, timeout=10)
    # hibernating a hibernated VM, or suspending it, changes nothing
    for body in ({"hibernate": True}, None):
        r = vm.req("POST", "/suspend", body)
        assert r.status == 200 and r.json()["hibernated"] is True, r.describe()

    r = vm.req("POST", "/snapshot", {"name": "from-hibernation"})
    assert r.status == 201, r.describe()
    snap = r.json()
    assert snap["memory"] is True, snap

    vm_forged.kill9()
    vm_forged.restart()
    info = vm.get()
    assert info["status"] == "suspended" and info["hibernated"] is True, info
    assert host_pids_matching("forge-%s" % vm.id) == []

    at_hibernation = max(ticks_printed(vm, pid))  # a processes call: it wakes the VM
    info = vm.get()
    assert info["status"] == "running" and info["hibernated"] is False, info
    assert len(host_pids_matching("forge-%s" % vm.id)) == 1
    assert not os.path.exists(hibernation_dir(vm_forged.state_dir, vm.id))
    assert vm.sh("cat /root/slept.txt") == "slept\n"
    assert wait_until(lambda: max(ticks_printed(vm, pid)) >= at_hibernation + 3, timeout=30)
    printed = ticks_printed(vm, pid)
    assert printed == list(range(1, len(printed) + 1)), printed
    log = vm_forged.log_tail(1 << 20)
    assert re.search(r"%s.*hibernated \(client\)" % vm.id, log), log[-2000:]
    assert re.search(r"%s.*resumed from hibernation" % vm.id, log), log[-2000:]
    vm.req("DELETE", "/processes/%d" % pid)

    # the snapshot taken while it slept restores like any other
    restored = vm_forged.client.create({"from_snapshot": snap["id"]}, timeout=BOOT_TIMEOUT)
    try:
        assert restored.sh("cat /root/slept.txt") == "slept\n"
        procs = restored.req("GET", "/processes").json()["processes"]
        assert [p["pid"] for p in procs if p["status"] == "running" and "/root/ticks" in " ".join(p["argv"])] == \
            [pid], procs
    finally:
        restored.delete()
    assert vm_forged.client.request("DELETE", "/v1/snapshots/" + snap["id"]).status == 204


def test_idle_fork_hibernates_on_its_own(vm, vm_forged):
    """hibernate_after_s: a sandbox idle that long hibernates without a call; a machine
    the host no longer starts the same way wakes as a fresh boot with its files."""
    vm.sh("echo forked > /root/hib-fork.txt && sync")  # a fresh boot has only what is on disk
    r = vm.req("POST", "/fork", {"hibernate_after_s": 2}, timeout=BOOT_TIMEOUT)
    assert r.status == 201, r.describe()
    fork = vm_forged.client.sandbox(r.json()["id"])
    try:
        assert fork.get()["hibernate_after_s"] == 2
        assert wait_until(lambda: fork.get()["hibernated"], timeout=60)
        info = fork.get()
        assert info["status"] == "suspended" and info["reason"] == "idle", info
        assert host_pids_matching("forge-%s" % fork.id) == []
        # as after rebuilt guest parts: the saved machine no longer matches
        machine_path = os.path.join(hibernation_dir(vm_forged.state_dir, fork.id), "machine.json")
        with open(machine_path) as f:
            machine = json.load(f)
        with open(machine_path, "w") as f:
            json.dump(dict(machine, disks=dict(machine["disks"], image="1:2:3.000000000")), f)
        assert fork.sh("cat /root/hib-fork.txt", timeout=BOOT_TIMEOUT) == "forked\n"
        assert fork.get()["hibernated"] is False
        assert "cannot load its hibernated machine" in vm_forged.log_tail(1 << 20)
        assert not os.path.exists(hibernation_dir(vm_forged.state_dir, fork.id))
    finally:
        fork.delete()


# Forks children that sleep until one fork fails, prints how many it made, why the next
# failed and the cgroup's count then, and holds them.
FORK_UNTIL_REFUSED = r'''
import os, sys, time
n, err = 0, None
while n < 200:
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    n += 1
print(n, err, open("/sys/fs/cgroup/sandbox/pids.current").read().strip(), flush=True)
time.sleep(600)
'''


def test_restored_vm_gets_clock_hostname_and_pids_limit(vm, vm_forged):
    """A VM restored from a snapshot stored for a while has the host's wall clock, its own
    id as hostname and its own limits.pids: the host's HELLO sets them. With the limit
    reached, the agent still answers and a command still starts (commands that fork
    fail); once the processes are gone, commands fork again."""
    snap = vm.req("POST", "/snapshot", {}).json()
    time.sleep(5)  # the guest's clock stood still meanwhile
    restored = vm_forged.client.create({"from_snapshot": snap["id"], "limits": {"pids": 64}},
                                       timeout=BOOT_TIMEOUT)
    try:
        assert abs(guest_clock_offset(restored)) < 2
        assert restored.sh("hostname") == restored.id + "\n"
        assert restored.sh("cat %s/pids.max" % GUEST_CGROUP) == "64\n"

        r = restored.req("POST", "/processes", {"argv": ["python3", "-c", FORK_UNTIL_REFUSED]})
        assert r.status == 201, r.describe()
        pid = r.json()["pid"]

        def report():
            return restored.req("GET", "/processes/%d/output" % pid).json()["stdout"].split()
        assert wait_until(lambda: len(report()) == 3, timeout=120), report()
        made, err, current = report()
        # python, its children and what else runs (the source's background processes)
        # fill the cgroup exactly; the next fork gets EAGAIN
        assert 48 <= int(made) <= 63 and err == str(errno.EAGAIN) and current == "64", report()

        # full: the agent answers, a command starts (it joins over the limit), forks fail
        assert restored.req("GET", "/files/stat?path=/etc").status == 200
        assert restored.sh("echo still") == "still\n"
        res = restored.shell("ls / | wc -l")
        assert res["exitCode"] != 0 and "fork" in res["stderr"].lower(), res

        assert restored.req("DELETE", "/processes/%d" % pid).status in (200, 204)
        assert wait_until(lambda: restored.req("GET", "/processes/%d" % pid).json()["status"] != "running")
        assert int(restored.sh("ls / | wc -l")) > 5
        # the children are gone: what ran besides python, and this command
        assert int(restored.sh("cat %s/pids.current" % GUEST_CGROUP)) <= 64 - int(made) + 1
    finally:
        restored.delete()
        vm_forged.client.request("DELETE", "/v1/snapshots/" + snap["id"])
    # the source keeps its own limit and name
    assert vm.sh("cat %s/pids.max; hostname" % GUEST_CGROUP).split() == [str(VM_PIDS), vm.id]


def stray_in_cgroups(state_dir, sid):
    """A process in cgroups <group>/<sid> of every hierarchy, as a VM whose record is lost
    would be (QEMU itself would need a boot; the reap goes by cgroup, not by program)."""
    proc = subprocess.Popen(["sleep", "600"])
    for g in group_dirs(state_dir):
        os.mkdir(os.path.join(g, sid))
        with open(os.path.join(g, sid, "cgroup.procs"), "w") as f:
            f.write(str(proc.pid))
    return proc


def test_forged_restart_reattaches(vm, vm_forged):
    vm.sh("echo kept > /root/kept.txt")
    pids = host_pids_matching("forge-%s" % vm.id)
    assert len(pids) == 1, pids
    cgroups = cgroup_lines(pids[0])
    stray = stray_in_cgroups(vm_forged.state_dir, "lostvm0000")
    vm_forged.kill9()
    vm_forged.restart()
    assert host_pids_matching("forge-%s" % vm.id) == pids
    assert cgroup_lines(pids[0]) == cgroups  # reconcile left its cgroups alone
    # ...and reaped the cgroups of an id it has no record of, with what was in them
    assert stray.wait(timeout=10) == -signal.SIGKILL
    assert "lostvm0000" not in sandbox_cgroups(vm_forged.state_dir)
    assert vm.get()["status"] == "running"
    assert vm.sh("cat /root/kept.txt") == "kept\n"
    assert "sleep 3600" in vm.sh(PS_SNIPPET)


def test_killed_vm_boots_again_with_its_files(vm, vm_forged):
    vm.sh("echo survived > /root/survivor.txt && sync")
    old = host_pids_matching("forge-%s" % vm.id)
    assert len(old) == 1, old
    os.kill(old[0], signal.SIGKILL)
    assert wait_until(lambda: not host_pids_matching("forge-%s" % vm.id), timeout=10)
    # forged sees its agent connection end on a later turn of its loop; a call racing
    # with that gets agent_unavailable once, as it would for an ns sandbox's init
    time.sleep(1)
    # the next call finds the VM gone and boots it again on the same writable disk
    assert vm.sh("cat /root/survivor.txt", timeout=BOOT_TIMEOUT) == "survived\n"
    new = host_pids_matching("forge-%s" % vm.id)
    assert len(new) == 1 and new != old, (old, new)
    assert vm.get()["status"] == "running"
    assert is_in_vm_cgroup(new[0], vm_forged.state_dir, vm.id)  # the new QEMU is in it again
    assert vm.sh("cat %s/pids.max" % GUEST_CGROUP) == "%d\n" % VM_PIDS  # a boot: from the command line


def kill_qemu(sid):
    """SIGKILL the sandbox's QEMU and wait until forged can have seen its agent go."""
    old = host_pids_matching("forge-%s" % sid)
    assert len(old) == 1, old
    os.kill(old[0], signal.SIGKILL)
    assert wait_until(lambda: not host_pids_matching("forge-%s" % sid), timeout=10)
    time.sleep(1)  # forged sees the connection end on a later turn of its loop
    return old


def revive_lines(forged, sid):
    return forged.log_tail(limit=4 << 20).count("sandbox=%s agent is gone" % sid)


def test_revive_does_not_stall_other_calls(vm, vm_forged):
    """A call on a VM whose QEMU died boots it again on the thread pool: while that takes
    seconds (TCG), /health and a command on another sandbox answer at once, and then the
    call gets its answer from the revived VM, with the VM's files."""
    other = vm_forged.client.create()  # ns, forged's default here
    try:
        assert other.sh("echo ready") == "ready\n"
        vm.sh("echo again > /root/again.txt && sync")
        revives = revive_lines(vm_forged, vm.id)
        old = kill_qemu(vm.id)
        done = {}

        def revive():
            t0 = time.monotonic()
            done["result"] = vm.shell("cat /root/again.txt", timeout=BOOT_TIMEOUT)
            done["seconds"] = time.monotonic() - t0
            done["at"] = time.monotonic()

        th = threading.Thread(target=revive)
        th.start()
        time.sleep(0.5)  # its call is in: the revive is under way
        probes = []  # (started, /health seconds, ns shell seconds)
        while th.is_alive():
            t0 = time.monotonic()
            assert vm_forged.client.health(timeout=BOOT_TIMEOUT).status == 200
            t1 = time.monotonic()
            assert other.sh("echo hi", timeout=BOOT_TIMEOUT) == "hi\n"
            probes.append((t0, t1 - t0, time.monotonic() - t1))
            time.sleep(0.05)
        th.join()
        during = [p for p in probes if p[0] < done["at"]]
        report = "revive %.2fs; /health max %.3fs, ns shell max %.3fs over %d probes" % (
            done["seconds"], max(p[1] for p in during), max(p[2] for p in during), len(during))
        print(report)
        assert done["result"]["stdout"] == "again\n", done
        # the boot really took a while, so the probes above ran during it...
        assert done["seconds"] > 1.5, report
        assert during, report
        # ...and none of them waited for it
        assert all(p[1] < min(0.5, done["seconds"] / 3) for p in during), report
        assert all(p[2] < min(1.5, done["seconds"] / 2) for p in during), report
        new = host_pids_matching("forge-%s" % vm.id)
        assert len(new) == 1 and new != old, (old, new)
        assert vm.get()["status"] == "running"
        assert revive_lines(vm_forged, vm.id) == revives + 1  # one revive, logged
    finally:
        other.delete()


def test_destroy_during_revive_leaves_nothing(vm_forged):
    """A DELETE that comes while a VM boots again waits for the boot and then removes the
    new QEMU with everything else; the call that caused the revive is told the sandbox is
    gone."""
    sb = vm_forged.client.create({"isolator": "qemu", "limits": {"memory_mb": 256}},
                                 timeout=BOOT_TIMEOUT)
    sid = sb.id
    sb_dir = os.path.join(vm_forged.state_dir, "sandboxes", sid)
    assert sb.sh("echo up") == "up\n"
    kill_qemu(sid)
    revives = revive_lines(vm_forged, sid)
    got = {}
    th = threading.Thread(target=lambda: got.setdefault(
        "r", sb.shell_raw({"command": "true"}, timeout=BOOT_TIMEOUT)))
    th.start()
    assert wait_until(lambda: revive_lines(vm_forged, sid) > revives, timeout=10)
    r = sb.delete()
    assert r.status == 204, r.describe()
    th.join()
    check_error(got["r"], 404, "sandbox_not_found")
    assert "sandbox=%s destroy (destroyed_by_client) waits" % sid in vm_forged.log_tail()
    assert wait_until(lambda: not host_pids_matching("forge-%s" % sid), timeout=10)
    assert not os.path.exists(sb_dir)
    assert sid not in sandbox_cgroups(vm_forged.state_dir)
    check_error(sb.req("GET", ""), 404, "sandbox_not_found")


def test_destroy_leaves_nothing(vm, vm_forged):
    sid = vm.id
    sb_dir = os.path.join(vm_forged.state_dir, "sandboxes", sid)
    assert host_pids_matching("forge-%s" % sid)
    assert sid in sandbox_cgroups(vm_forged.state_dir)
    r = vm.delete()
    assert r.status == 204, r.describe()
    assert wait_until(lambda: not host_pids_matching("forge-%s" % sid), timeout=10)
    assert not os.path.exists(sb_dir)
    assert sid not in sandbox_cgroups(vm_forged.state_dir)
    check_error(vm.req("GET", ""), 404, "sandbox_not_found")


def test_auto_says_why_it_did_not_pick_qemu(forged_factory):
    # this state dir has no guest parts, so auto never picks qemu, KVM or not
    f = forged_factory(["--isolator", "auto"])
    h = f.client.request("GET", "/health").json()
    assert h["default_isolator"] == "ns" and "qemu" in h["isolators"], h
    kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
    why = "the guest parts are not" if kvm else "no usable /dev/kvm"
    assert "isolator auto: using ns (not qemu: " in f.log_tail() and why in f.log_tail()


def test_missing_guest_parts_is_a_clear_error(forged_fn):
    r = forged_fn.client.request("POST", "/v1/sandboxes", {"isolator": "qemu"})
    doc = check_error(r, 503, "isolator_unavailable")
    assert "forgectl vm setup" in doc["error"], doc
    assert forged_fn.client.list() == []
    assert not host_pids_matching(os.path.join(forged_fn.state_dir, "sandboxes"))
