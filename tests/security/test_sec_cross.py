"""SECURITY.md battery, across sandboxes: X3 X4 X6."""

import os

from forge_client import upper_dir

from secutil import describe, not_blocked, parse_results

X4_KEY = "0x4a3f"  # shared by the two sandboxes of X4 and looked up on the host
X4_MQ = "forge-x4-queue"


def test_x3_vsock_and_io_uring_blocked(sec):
    sb = sec.new()
    results = sec.syscalls(sb, "cross")
    bad = not_blocked(results, ["socket_vsock", "io_uring_setup", "io_uring_enter"])
    assert not bad, "not blocked: %s" % describe(bad)
    sec.finish()


def _host_sysv_keys():
    keys = set()
    for kind in ("shm", "msg", "sem"):
        with open("/proc/sysvipc/%s" % kind) as f:
            for line in f.read().splitlines()[1:]:
                keys.add((kind, int(line.split()[0])))
    return keys


def test_x4_ipc_not_shared(sec):
    a = sec.new()
    b = sec.new()
    made = parse_results(sec.probe(a, "ipc", "make", X4_KEY, X4_MQ)["stdout"])
    for kind in ("shm", "msg", "sem"):
        assert made.get(kind, "").startswith("ok:"), "sandbox A cannot create %s: %r" % (kind, made)
    a.sh("echo shared-secret > /dev/shm/forge-x4")
    # A still sees its own objects (they outlive the process that made them)
    again = parse_results(sec.probe(a, "ipc", "look", X4_KEY, X4_MQ)["stdout"])
    assert all(again[k].startswith("ok:") for k in ("shm", "msg", "sem")), again

    seen = parse_results(sec.probe(b, "ipc", "look", X4_KEY, X4_MQ)["stdout"])
    assert {k: seen.get(k) for k in ("shm", "msg", "sem")} == \
        {"shm": "ENOENT", "msg": "ENOENT", "sem": "ENOENT"}, "sandbox B sees A's IPC objects: %r" % seen
    # a POSIX queue made in A (if the profile lets A make one) is not in B
    assert not seen.get("mq", "").startswith("ok:"), "sandbox B opens A's message queue: %r" % seen
    assert b.shell("cat /dev/shm/forge-x4")["exitCode"] != 0
    assert b.sh("ls -A /dev/shm") == ""
    key = int(X4_KEY, 16)
    assert not [k for k in _host_sysv_keys() if k[1] == key], "A's IPC objects are in the host's namespace"
    sec.finish()


def test_x6_new_sandbox_starts_empty(sec, forged):
    a = sec.new(probe=False)
    a.sh("for d in /root /tmp /var/tmp /etc /home /run /dev/shm; do echo left > $d/forge-x6-left; done")
    b = sec.new(probe=False)
    upper = upper_dir(forged.state_dir, b.id)
    files = []
    for root, dirs, names in os.walk(upper):
        files += [os.path.join(root, n) for n in names]
    assert not files, "the new sandbox's writable layer is not empty: %s" % files[:20]
    assert b.shell("ls /root/forge-x6-left /tmp/forge-x6-left /etc/forge-x6-left")["exitCode"] != 0
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        assert b.sh("ls -A %s" % d) == "", "%s is not empty in a new sandbox" % d
    assert "forge-x6-left" not in b.sh("find / -xdev -name 'forge-x6-*' 2>/dev/null; "
                                      "ls -A /dev/shm /run /home; true")
    sec.finish()
