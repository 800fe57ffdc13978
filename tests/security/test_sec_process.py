"""SECURITY.md battery, processes and fds: P1-P6."""

import hashlib
import json
import os
import subprocess
import time

from forge_client import PS_SNIPPET, wait_until
from secutil import init_pid, uid_range

from forge_it_conftest import HOST_TOKEN_VAR


def test_p1_kill_all_reaches_only_the_sandbox(sec, forged, neighbour):
    sb = sec.new(probe=False)
    first, _ = uid_range(init_pid(forged, sb.id))

    def as_sandbox_root():
        os.setgroups([])
        os.setgid(first)
        os.setuid(first)

    # a host process with the very uid the sandbox's root has on the host
    host = subprocess.Popen(["sleep", "5151.5"], preexec_fn=as_sandbox_root)
    try:
        sb.sh("sleep 6161.5 > /dev/null 2>&1 &")
        assert wait_until(lambda: "6161.5" in sb.sh(PS_SNIPPET))  # cmdline is empty mid-exec
        sb.shell("kill -9 -1; sleep 0.5; echo after")
        time.sleep(0.5)
        assert host.poll() is None, "kill -9 -1 in the sandbox killed a host process"
        assert forged.alive()
        # inside, everything but PID 1 died; the sandbox still works
        ps = sb.sh(PS_SNIPPET)
        assert "6161.5" not in ps, ps
        assert sb.sh("echo still-here") == "still-here\n"
    finally:
        host.kill()
        host.wait()
    sec.finish()  # also checks the neighbour's own background process


def test_p2_only_std_fds_no_host_paths(sec, forged):
    sb = sec.new()
    fds = sec.probe(sb, "fds")
    assert fds["exitCode"] == 0, fds
    nums = sorted(int(line.split()[0]) for line in fds["stdout"].splitlines())
    assert nums == [0, 1, 2], "a command starts with fds %s:\n%s" % (nums, fds["stdout"])
    # every fd of every process we can see: no host path, no directory outside the root
    sb.sh("sleep 30 > /dev/null 2>&1 &")
    listing = sb.sh("for f in /proc/[0-9]*/fd/* /proc/[0-9]*/cwd /proc/[0-9]*/root; do "
                    "t=$(readlink $f 2>/dev/null) && echo \"$f $t\"; done; true")
    bad = []
    for line in listing.splitlines():
        f, _, target = line.partition(" ")
        if not target.startswith("/"):
            continue  # pipe:[..], socket:[..], anon_inode:...
        if forged.state_dir in target or "/sandboxes/" in target or target.endswith(" (deleted)"):
            bad.append(line)
        elif sb.shell("test -e '%s'" % target)["exitCode"] != 0:
            bad.append(line + "  (not a path inside the sandbox)")
    assert not bad, "fds pointing outside the sandbox:\n" + "\n".join(bad)
    sec.finish()


def test_p3_cwd_inside_root(sec):
    sb = sec.new(probe=False)
    assert sb.sh("readlink /proc/self/cwd") == "/root\n"
    assert sb.sh("readlink /proc/self/root") == "/\n"
    assert sb.sh("cd /../../../..; pwd -P") == "/\n"
    assert sb.sh("cd /; cd ..; ls -A | sort") == sb.sh("ls -A / | sort")
    roots = sb.sh("for p in /proc/[0-9]*; do r=$(readlink $p/root 2>/dev/null) && echo \"$p $r\"; "
                  "c=$(readlink $p/cwd 2>/dev/null) && echo \"$p $c\"; done; true")
    for line in roots.splitlines():
        p, target = line.split(" ", 1)
        assert target.startswith("/") and sb.shell("test -d '%s'" % target)["exitCode"] == 0, line
    sec.finish()


_EXE_WRITE = r'''
import os
out = []
for p in sorted(os.listdir("/proc"), key=lambda s: (len(s), s)):
    if not p.isdigit():
        continue
    try:
        comm = open("/proc/%s/comm" % p).read().strip()
    except OSError:
        continue
    if comm != "forge-agent" and p != "1":
        continue
    for mode in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND):
        try:
            fd = os.open("/proc/%s/exe" % p, mode)
            os.close(fd)
            out.append("%s %s opened" % (p, comm))
        except OSError as e:
            out.append("%s %s %s" % (p, comm, e.strerror))
print("\n".join(out))
'''


def test_p4_agent_exe_not_writable(sec, forged):
    agent = os.path.join(forged.bin_dir, "forge-agent")
    with open(agent, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    sb = sec.new(probe=False)
    sb.sh("sleep 30 > /dev/null 2>&1 &")
    sb.upload("/root/.exe.py", _EXE_WRITE.encode())
    out = sb.sh("python3 /root/.exe.py")
    lines = out.splitlines()
    assert any(line.startswith("1 ") for line in lines), "PID 1 not probed: %r" % out
    assert len(lines) >= 6, "no shepherd (forge-agent) process probed besides PID 1: %r" % out
    opened = [line for line in lines if line.endswith(" opened")]
    assert not opened, "/proc/<pid>/exe of forged's processes opens for writing:\n" + out
    with open(agent, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest
    sec.finish()


ALLOWED_ENV = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TERM", "HOSTNAME", "SHELL", "PWD",
               "SHLVL", "OLDPWD", "_"}


def test_p5_environment_has_no_host_variables(sec, host_token):
    sb = sec.new({"env": {"MY_VAR": "mine"}}, probe=False)
    env = sb.sh("env -0 | tr '\\0' '\\n'; echo ==; cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n'; true")
    assert host_token not in env and HOST_TOKEN_VAR not in env
    names = {ln.split("=", 1)[0] for ln in env.split("==")[0].splitlines() if "=" in ln}
    assert names - ALLOWED_ENV == {"MY_VAR"}, "unexpected variables: %s" % sorted(names - ALLOWED_ENV)
    py = sb.execute("import os, json; print(json.dumps(dict(os.environ)))", runtime="python")
    pyenv = json.loads(py["stdout"])
    assert host_token not in py["stdout"]
    assert set(pyenv) - ALLOWED_ENV == {"MY_VAR"}, sorted(set(pyenv) - ALLOWED_ENV)
    for var in ("PYTEST_CURRENT_TEST", "FORGE_BUILD", "SSH_AUTH_SOCK", "LD_PRELOAD",
                "ASAN_OPTIONS", "UBSAN_OPTIONS", "PYTHONPATH"):
        assert var not in names and var not in pyenv, var
    sec.finish()


def _process_output(sb, pid, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        r = sb.req("GET", "/processes/%d/output" % pid)
        assert r.status == 200, r.describe()
        doc = r.json()
        if doc.get("status") != "running" or time.monotonic() > deadline:
            return doc
        time.sleep(0.1)


def test_p6_no_host_tty_fresh_devpts(sec):
    sb = sec.new(probe=False)
    # without a PTY: no terminal at all
    res = sb.shell("tty")
    assert res["exitCode"] != 0 and "not a tty" in res["stdout"], res
    assert sb.shell("test -t 0 || test -t 1 || test -t 2")["exitCode"] != 0
    assert sb.sh("cut -d' ' -f7 /proc/self/stat") == "0\n", "a controlling terminal"
    res = sb.shell("head -c 0 /dev/tty")
    assert res["exitCode"] != 0, "/dev/tty opens without a controlling terminal"
    assert sb.sh("ls -A /dev/pts") == "ptmx\n"

    # a pty made inside comes from the sandbox's own devpts instance
    host_dev = os.stat("/dev/pts").st_dev
    out = sb.sh("python3 -c 'import os, pty\nm, s = pty.openpty()\n"
                "print(os.ttyname(s), os.stat(os.ttyname(s)).st_dev, os.stat(\"/dev/pts\").st_dev)\n"
                "print(sorted(os.listdir(\"/dev/pts\")))'")
    first, listing = out.splitlines()
    name, dev_slave, dev_pts = first.split()
    assert name == "/dev/pts/0", "the first pty of a fresh devpts is 0: %s" % name
    assert int(dev_pts) != host_dev and int(dev_slave) != host_dev, "the host's devpts"
    assert listing == "['0', 'ptmx']", listing

    # with a PTY asked for: a fresh devpts one, and nothing of the host's
    r = sb.req("POST", "/processes", {"command": "tty; ls -A /dev/pts; stat -c %d /dev/pts",
                                      "pty": {"rows": 24, "cols": 80}})
    assert r.status == 201, "starting a process with a PTY: %s" % r.describe()
    doc = _process_output(sb, r.json()["pid"])
    lines = [ln.strip() for ln in doc["stdout"].replace("\r", "").splitlines() if ln.strip()]
    assert lines and lines[0].startswith("/dev/pts/"), doc
    assert int(lines[-1]) != host_dev, "the PTY is on the host's devpts: %r" % doc
    sec.finish()
