"""SECURITY.md battery, filesystem, /proc, /sys and devices: F1-F13."""

import base64
import os
import secrets
import socket
import subprocess

import pytest

from forge_client import PS_SNIPPET
from secutil import BLOCKED, describe, not_blocked

from forge_it_conftest import REPO


def _ok(res):
    return res["exitCode"] == 0


@pytest.fixture
def host_markers():
    """Marker files in the host's /root and /home, removed afterwards."""
    name = ".forge-sec-%s" % secrets.token_hex(6)
    paths = [os.path.join(d, name) for d in ("/root", "/home")]
    for p in paths:
        with open(p, "w") as f:
            f.write("host marker %s\n" % name)
    yield name
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass


def test_f1_host_files_invisible(sec, forged, host_markers):
    sb = sec.new(probe=False)
    with open("/etc/shadow", "rb") as f:
        shadow = f.read()
    hashes = [ln.split(b":")[1] for ln in shadow.splitlines() if ln.count(b":") > 2
              and ln.split(b":")[1].startswith(b"$")]
    for p in ("/etc/shadow", "/etc/gshadow", "/proc/1/root/etc/shadow",
              "/proc/self/root/etc/shadow", "/../../../etc/shadow", "/proc/1/cwd/../etc/shadow"):
        res = sb.shell("base64 -w0 %s" % p)
        if _ok(res):
            seen = base64.b64decode(res["stdout"])
            assert seen != shadow and not any(h in seen for h in hashes), \
                "the host's /etc/shadow is readable at %s" % p

    name = host_markers
    res = sb.shell("ls -a /root /home; cat /root/%s /home/%s; find / -xdev -name %s" % (name, name, name))
    assert name not in res["stdout"] and "host marker" not in res["stdout"], res["stdout"]
    for home in os.listdir("/home"):
        if home != name:
            assert not _ok(sb.shell("test -e /home/%s" % home)), "host home %s visible" % home

    rec = os.path.join(forged.state_dir, "sandboxes", sb.id, "sandbox.json")
    assert os.path.exists(rec)
    for p in (forged.state_dir, rec, os.path.join(forged.bin_dir, "forged"),
              os.path.join(str(REPO), "Makefile")):
        assert not _ok(sb.shell("test -e %s" % p)), "host path visible in the sandbox: %s" % p
    sec.finish()


# Writes of the value a file already holds, so a write that went through would change
# nothing on the host.
_PROC_SYS = [
    "/proc/sys/kernel/hostname",
    "/proc/sys/kernel/domainname",
    "/proc/sys/kernel/dmesg_restrict",
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/shmmax",
    "/proc/sys/kernel/msgmnb",
    "/proc/sys/fs/mqueue/queues_max",
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/ipv4/ping_group_range",
    "/proc/sys/net/core/somaxconn",
    "/proc/sys/user/max_user_namespaces",
    "/proc/sys/vm/overcommit_memory",
]


def _rewrite(sb, paths):
    """{path: "written" | "failed: <stderr>" | "absent"} for same-value writes."""
    script = "; ".join(
        "if [ -e {p} ]; then v=$(cat {p} 2>/dev/null) && (printf '%s\\n' \"$v\" > {p}) 2>/dev/null "
        "&& echo '{p} written' || echo '{p} failed'; else echo '{p} absent'; fi".format(p=p)
        for p in paths)
    out = {}
    for line in sb.sh(script).splitlines():
        p, _, what = line.rpartition(" ")
        out[p] = what
    return out


def test_f2_proc_sys_read_only(sec):
    sb = sec.new(probe=False)
    out = _rewrite(sb, _PROC_SYS)
    written = [p for p, what in out.items() if what == "written"]
    assert not written, "writes to /proc/sys went through: %s (all: %r)" % (written, out)
    # a write-only knob that is harmless if it went through
    res = sb.shell("echo 1 > /proc/sys/vm/drop_caches")
    assert not _ok(res), "/proc/sys/vm/drop_caches is writable"
    sec.finish()


def test_f3_sysrq_trigger_and_read_only_proc(sec):
    sb = sec.new(probe=False)
    # 'h' only prints the help to the kernel log, should the write ever go through
    res = sb.shell("printf h > /proc/sysrq-trigger")
    assert not _ok(res), "/proc/sysrq-trigger is writable"
    out = _rewrite(sb, ["/proc/irq/default_smp_affinity", "/proc/sys/kernel/sysrq"])
    written = [p for p, what in out.items() if what == "written"]
    assert not written, "read-only /proc paths are writable: %r" % out
    res = sb.shell("touch /proc/bus/forge-probe /proc/fs/forge-probe /proc/irq/forge-probe "
                   "2>/dev/null; ls /proc/bus /proc/fs /proc/irq 2>/dev/null | grep -c forge-probe")
    assert res["stdout"].strip() in ("", "0"), res
    sec.finish()


MASKED = ["/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
          "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
          "/proc/timer_stats", "/sys/firmware"]


def test_f4_masked_paths_read_empty(sec):
    """Each masked path is absent, or reads as empty: a file gives 0 bytes (and no error),
    a directory lists nothing."""
    sb = sec.new(probe=False)
    script = "; ".join(
        "if [ ! -e {p} ]; then echo '{p} absent'; elif [ -d {p} ]; then echo \"{p} dir:$(ls -A {p} | wc -l)\"; "
        "else n=$(head -c 65536 {p} 2>/dev/null | wc -c); head -c 1 {p} >/dev/null 2>&1 && "
        "echo \"{p} file:$n\" || echo '{p} unreadable'; fi".format(p=p) for p in MASKED)
    seen = dict(line.rsplit(" ", 1) for line in sb.sh(script).splitlines())
    bad = {p: v for p, v in seen.items() if v not in ("absent", "dir:0", "file:0")}
    assert not bad, "masked paths that do not read empty: %r" % bad
    sec.finish()


def test_f5_sys_writes_fail(sec):
    sb = sec.new(probe=False)
    mi = sb.sh("cat /proc/self/mountinfo")
    for line in mi.splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype in ("sysfs", "cgroup", "cgroup2", "securityfs", "debugfs", "tracefs", "configfs"):
            assert "ro" in fields[5].split(","), "writable %s mount: %s" % (fstype, line)
    out = _rewrite(sb, ["/sys/kernel/mm/transparent_hugepage/enabled", "/sys/class/net/lo/mtu",
                        "/sys/kernel/uevent_helper", "/sys/fs/cgroup/cgroup.procs",
                        "/sys/module/printk/parameters/time"])
    written = [p for p, what in out.items() if what == "written"]
    assert not written, "writes to /sys went through: %r" % out
    sec.finish()


def test_f6_mount_fails(sec):
    sb = sec.new()
    before = sb.sh("cat /proc/self/mountinfo")
    for cmd in ("mkdir -p /tmp/m && mount -t tmpfs none /tmp/m",
                "mount --bind / /tmp/m", "mount -o remount,rw /usr",
                "mount -t proc proc /tmp/m", "umount -l /proc", "umount /dev/shm",
                "mount -t overlay overlay -o lowerdir=/usr,upperdir=/tmp/u,workdir=/tmp/w /tmp/m"):
        res = sb.shell(cmd)
        assert not _ok(res), "mount command went through: %s" % cmd
    results = sec.syscalls(sb, "mount")
    names = ["mount_tmpfs", "mount_bind", "mount_proc", "mount_remount", "umount2",
             "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
             "open_tree_clone", "open_tree_plain", "mount_setattr"]
    bad = not_blocked(results, names)
    assert not bad, "mount family not blocked: %s\nall: %s" % (describe(bad), describe(results))
    assert _mount_points(sb.sh("cat /proc/self/mountinfo")) == _mount_points(before)
    sec.finish()


def _mount_points(mountinfo):
    return sorted(line.split()[4] for line in mountinfo.splitlines())


def test_f7_nested_namespaces_fail(sec):
    sb = sec.new()
    for cmd in ("unshare -U true", "unshare -Ur true", "unshare -m true", "unshare -n true",
                "unshare -p -f true"):
        res = sb.shell(cmd)
        assert not _ok(res), "went through: %s" % cmd
    results = sec.syscalls(sb, "clone")
    names = ["clone_newuser", "clone_newns", "clone_newpid", "clone_newnet", "clone3_plain",
             "clone3_newuser", "unshare_user"]
    bad = not_blocked(results, names)
    assert not bad, "namespace creation not blocked: %s\nall: %s" % (describe(bad), describe(results))
    sec.finish()


def _host_release_agents():
    out = {}
    for h in sorted(os.listdir("/sys/fs/cgroup")):
        p = os.path.join("/sys/fs/cgroup", h, "release_agent")
        try:
            with open(p) as f:
                out[p] = f.read()
        except OSError:
            pass
    return out


def test_f8_cgroup_release_agent(sec):
    """The classic escape (CVE-2022-0492): a cgroup v1 hierarchy mounted from a nested
    user+cgroup namespace, then release_agent written. Every step must fail, the
    sandbox sees no cgroupfs at all, and the host's release agents are unchanged."""
    before = _host_release_agents()
    sb = sec.new(probe=False)
    attempts = [
        "mkdir -p /tmp/cg && mount -t cgroup -o rdma cgroup /tmp/cg",
        "mkdir -p /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg",
        "mkdir -p /tmp/cg && mount -t cgroup2 none /tmp/cg",
        "mkdir -p /tmp/cg && unshare -UrmC sh -c 'mount -t cgroup -o rdma cgroup /tmp/cg && "
        "echo /bin/true > /tmp/cg/release_agent'",
    ]
    for cmd in attempts:
        assert not _ok(sb.shell(cmd)), "went through: %s" % cmd
    found = sb.shell("find / -xdev -name release_agent 2>/dev/null; "
                     "grep -E ' - (cgroup|cgroup2) ' /proc/self/mountinfo; true")
    assert found["stdout"].strip() == "", "cgroup files visible in the sandbox:\n" + found["stdout"]
    for line in sb.sh("cat /proc/self/cgroup").splitlines():
        assert line.split(":", 2)[2] == "/", "the cgroup namespace shows a host path: %s" % line
    assert _host_release_agents() == before
    sec.finish()


def test_f9_no_mknod_minimal_dev(sec):
    sb = sec.new(probe=False)
    for cmd in ("mknod /tmp/null c 1 3", "mknod /tmp/vda b 254 0", "mknod /dev/forge c 1 3",
                "mknod /tmp/mem c 1 1"):
        assert not _ok(sb.shell(cmd)), "went through: %s" % cmd
    allowed = {"null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "fd",
               "stdin", "stdout", "stderr", "mqueue"}
    entries = set(sb.sh("ls -A /dev").split())
    assert entries - allowed == set(), "unexpected entries in /dev: %s" % sorted(entries - allowed)
    nodes = {}
    # stat each entry: find trusts readdir's d_type, which is wrong for bind-mounted nodes
    for line in sb.sh("stat -c '%n|%F|%t:%T' /dev/* /dev/pts/* /dev/shm/* 2>/dev/null; true").splitlines():
        name, kind, dev = line.split("|")
        if kind in ("character special file", "block special file"):
            nodes[name] = (kind, dev)
    want = {"/dev/null": "1:3", "/dev/zero": "1:5", "/dev/full": "1:7", "/dev/random": "1:8",
            "/dev/urandom": "1:9", "/dev/tty": "5:0", "/dev/pts/ptmx": "5:2"}
    for name, dev in want.items():
        assert nodes.get(name, (None, None))[1] == dev, "%s: %r" % (name, nodes.get(name))
    extra = {n: v for n, v in nodes.items() if n not in want}
    assert not extra, "device nodes beyond the listed ones: %r" % extra
    assert all(kind == "character special file" for kind, _ in nodes.values()), nodes
    sec.finish()


def test_f10_setuid_gains_nothing(sec):
    sb = sec.new(probe=False)
    for p in ("/proc/self/status", "/proc/1/status"):
        st = sb.sh("grep -E '^(NoNewPrivs|CapEff|CapPrm):' %s" % p)
        assert "NoNewPrivs:\t1" in st, (p, st)
    # a set-uid and set-gid root binary of the sandbox's own
    st = sb.sh("cp /bin/cat /root/suidcat && chmod 6755 /root/suidcat && "
               "/root/suidcat /proc/self/status")
    fields = dict(line.split(":", 1) for line in st.splitlines() if ":" in line)
    assert fields["NoNewPrivs"].strip() == "1", st
    for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[k].strip(), 16) == 0, "%s after a setuid exec: %s" % (k, fields[k])
    sec.finish()


def test_f11_mountinfo_leaks_no_names(sec, forged, neighbour):
    tenant = "tenant-" + secrets.token_hex(5)
    owner = "owner-" + secrets.token_hex(5)
    sb = sec.new({"name": tenant, "metadata": {"owner": owner}}, probe=False)
    text = sb.sh("cat /proc/self/mountinfo /proc/1/mountinfo /proc/self/mounts")
    needles = [tenant, owner, neighbour.sb.id, sb.id, forged.state_dir, str(REPO),
               "forge-it-state", "/sandboxes/", "/home/", socket.gethostname()]
    needles += [h for h in os.listdir("/home") if len(h) > 2]
    with open("/etc/passwd") as f:
        for line in f:
            parts = line.split(":")
            if len(parts) > 2 and parts[2].isdigit() and 1000 <= int(parts[2]) < 60000:
                needles.append(parts[0])
    leaks = [n for n in needles if n and n in text]
    assert not leaks, "mountinfo names %s:\n%s" % (leaks, text)
    sec.finish()


def test_f12_proc_only_sandbox_processes(sec, neighbour):
    marker = "4141.%d" % (secrets.randbelow(900) + 100)
    host = subprocess.Popen(["sleep", marker])
    try:
        sb = sec.new(probe=False)
        ps = sb.sh(PS_SNIPPET)
        pids = [int(line.split()[0]) for line in ps.splitlines()]
        assert 1 in pids and len(pids) < 20, ps
        assert marker not in ps, "a host process is visible:\n" + ps
        assert Neighbour_sleep(neighbour) not in ps, "the neighbour's process is visible:\n" + ps
        for bad in ("pytest", "forged", "systemd", "init"):
            assert bad not in ps.replace("forge-agent", ""), (bad, ps)
        listed = sb.sh("ls /proc | grep -E '^[0-9]+$' | wc -l").strip()
        assert int(listed) < 20, listed
        assert not _ok(sb.shell("test -e /proc/%d" % host.pid)) or host.pid < 20
    finally:
        host.kill()
        host.wait()
    sec.finish()


def Neighbour_sleep(neighbour):
    return "sleep " + neighbour.SLEEP


def test_f13_dmesg_fails(sec):
    sb = sec.new()
    assert not _ok(sb.shell("dmesg")), "dmesg works in the sandbox"
    assert not _ok(sb.shell("head -c 1 /dev/kmsg")), "/dev/kmsg is readable"
    res = sb.shell("timeout 2 head -c 1 /proc/kmsg")
    assert not _ok(res) and res["exitCode"] != 124, "/proc/kmsg opens: %r" % res
    results = sec.syscalls(sb, "syslog")
    bad = not_blocked(results, ["syslog_read_all", "syslog_size"])
    assert not bad, "syslog not blocked: %s" % describe(bad)
    assert set(results.values()) <= set(BLOCKED)
    sec.finish()
