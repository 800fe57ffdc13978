"""Helpers of the security battery: the post-conditions every case ends with, the
probe runner and the result vocabulary, host-side views of a sandbox (its uid range,
its cgroup directories), and a pipelining HTTP client for the file API race.

Post-conditions (SECURITY.md, "every case ends with the same post-conditions"):
  - forged still answers /health;
  - after destroy, no host process runs with a uid of the sandbox's range, no mount of
    the host's mount table names the sandbox, its cgroup directories are gone;
  - the neighbour sandbox made at module start still runs a command correctly, and
    still has its file and its background process.
"""

import glob
import os
import re
import secrets
import shlex
import socket
import time

from forge_client import PS_SNIPPET, wait_until

# What counts as "blocked" for a system call: refused with EPERM or ENOSYS by the
# seccomp profile (or by the kernel before it looked at the arguments), or the process
# killed by seccomp's SIGSYS.
BLOCKED = ("EPERM", "ENOSYS", "killed:SIGSYS")
PROBE_PATH = "/root/.forge-probe"
CGROUP_ROOT = "/sys/fs/cgroup"


# ---- host-side views ---------------------------------------------------------------

def sandbox_dir(forged, sid):
    return os.path.join(forged.state_dir, "sandboxes", sid)


def init_pid(forged, sid):
    """The host pid of the sandbox's agent (PID 1 inside), from ns.pid."""
    with open(os.path.join(sandbox_dir(forged, sid), "ns.pid")) as f:
        return int(f.read().split()[0])


def uid_range(pid):
    """(first, count) of the host uids mapped into pid's user namespace."""
    with open("/proc/%d/uid_map" % pid) as f:
        inside, outside, count = f.read().split()[:3]
    assert inside == "0", "uid_map does not start at 0: %s" % inside
    return int(outside), int(count)


def forged_cgroup_paths(forged):
    """forged's own cgroup path in every hierarchy (from /proc/PID/cgroup)."""
    paths = set()
    with open("/proc/%d/cgroup" % forged.proc.pid) as f:
        for line in f:
            paths.add(line.rstrip("\n").split(":", 2)[2])
    return paths


def cgroup_dirs(forged, sid):
    """Every /sys/fs/cgroup/<hierarchy>/<forged's path>/forge-*/<sid> that exists."""
    found = set()
    hierarchies = [CGROUP_ROOT] + glob.glob(CGROUP_ROOT + "/*/")
    for h in hierarchies:
        for p in forged_cgroup_paths(forged):
            base = os.path.join(h.rstrip("/"), p.lstrip("/"))
            found.update(glob.glob(os.path.join(base, "forge-*", sid)))
    return sorted(found)


def cgroup_file(forged, sid, name):
    """The path of one cgroup file of the sandbox (e.g. "cpuacct.usage"), or None."""
    for d in cgroup_dirs(forged, sid):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    return None


def _ns_links(pid):
    out = set()
    for ns in ("user", "pid", "mnt"):
        try:
            out.add(os.readlink("/proc/%s/ns/%s" % (pid, ns)))
        except OSError:
            pass
    return out


def sandbox_processes(view):
    """Host processes that belong to the sandbox of `view`: in one of its cgroups, or
    with a uid of its range and one of its namespaces. (The uid range alone is not
    enough: another forged on this host, e.g. a parallel test run, hands out the same
    ranges to its own sandboxes.)"""
    out = []
    cg_suffix = "/" + view.sid
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/status" % name) as f:
                uids = [ln for ln in f if ln.startswith("Uid:")][0].split()[1:]
            with open("/proc/%s/cgroup" % name) as f:
                cgroups = [ln.rstrip("\n").split(":", 2)[2] for ln in f]
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except (OSError, IndexError):
            continue
        in_cgroup = any(c.endswith(cg_suffix) or (cg_suffix + "/") in c for c in cgroups
                        if "/forge-" in c)
        in_range = any(view.uid_first <= int(u) < view.uid_first + view.uid_count for u in uids)
        if in_cgroup or (in_range and _ns_links(name) & view.namespaces):
            out.append("%s uids=%s cgroups=%s %s" % (name, ",".join(uids), cgroups[:2], cmd[:200]))
    return out


def host_mounts_naming(*needles):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if any(n in line for n in needles):
                out.append(line.strip())
    return out


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class HostView:
    """What the host knows of a live sandbox, taken before it is destroyed."""

    def __init__(self, forged, sid):
        self.sid = sid
        self.dir = sandbox_dir(forged, sid)
        self.pid = init_pid(forged, sid)
        self.uid_first, self.uid_count = uid_range(self.pid)
        self.cgroups = cgroup_dirs(forged, sid)
        self.namespaces = _ns_links(self.pid)
        assert self.namespaces, "cannot read the namespaces of the agent (host pid %d)" % self.pid


# ---- probe results -----------------------------------------------------------------

def parse_results(text):
    """"name result" lines -> {name: result}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out


def parse_kv(text):
    """"a=1 b=X" words of every line -> {"a": "1", "b": "X"}."""
    out = {}
    for word in text.split():
        if "=" in word:
            k, v = word.split("=", 1)
            out[k] = v
    return out


def not_blocked(results, names, also=()):
    """{name: result} of the attempts among `names` that were not blocked."""
    missing = [n for n in names if n not in results]
    assert not missing, "the probe did not report %s: %r" % (missing, results)
    return {n: results[n] for n in names if results[n] not in BLOCKED + tuple(also)}


def describe(results):
    return ", ".join("%s=%s" % kv for kv in sorted(results.items()))


# ---- the neighbour and the battery -------------------------------------------------

class Neighbour:
    """A sandbox made at module start that every case checks afterwards."""

    SLEEP = "7777.25"

    def __init__(self, forged):
        self.forged = forged
        self.token = "neighbour-" + secrets.token_hex(8)
        self.sb = forged.client.create()
        self.sb.sh("echo %s > /root/neighbour-marker; sleep %s > /dev/null 2>&1 &"
                   % (self.token, self.SLEEP))

    def check(self):
        res = self.sb.shell("cat /root/neighbour-marker; echo $((6 * 7))", timeout=60)
        assert res["exitCode"] == 0 and res["stdout"] == "%s\n42\n" % self.token, \
            "the neighbour sandbox no longer works: %r" % res
        ps = self.sb.sh(PS_SNIPPET)
        assert "sleep " + self.SLEEP in ps, "the neighbour's background process is gone:\n" + ps

    def destroy(self):
        try:
            self.forged.client.delete(self.sb.id)
        except OSError:
            pass


class Battery:
    def __init__(self, forged, neighbour, probe_bytes):
        self.forged = forged
        self.client = forged.client
        self.neighbour = neighbour
        self.probe_bytes = probe_bytes
        self.victims = []
        self.destroyed = set()

    # sandboxes under test
    def new(self, spec=None, probe=True):
        sb = self.client.create(spec)
        self.victims.append(sb)
        if probe:
            self.install_probe(sb)
        return sb

    def install_probe(self, sb):
        sb.put_file(PROBE_PATH, self.probe_bytes)
        sb.sh("chmod 755 %s" % PROBE_PATH)

    def probe(self, sb, *args, **fields):
        """Runs the probe inside sb; returns the shell result (exit status not checked)."""
        cmd = " ".join([PROBE_PATH] + [shlex.quote(str(a)) for a in args])
        return sb.shell(cmd, **fields)

    def syscalls(self, sb, *groups):
        """Runs `probe sys GROUP...` and returns {attempt: result}."""
        res = self.probe(sb, "sys", *groups)
        assert res["exitCode"] == 0, "probe failed: %r" % res
        return parse_results(res["stdout"])

    # post-conditions
    def finish(self):
        r = self.client.health(timeout=10)
        assert r.status == 200, "forged no longer answers /health: %s" % r.describe()
        for sb in self.victims:
            if sb.id not in self.destroyed:
                self.destroy_and_check(sb)
        self.neighbour.check()
        assert self.client.health(timeout=10).status == 200

    def destroy_and_check(self, sb):
        view = HostView(self.forged, sb.id)
        assert view.cgroups, "no cgroup directory found for %s (forged's cgroups: %s)" % (
            sb.id, sorted(forged_cgroup_paths(self.forged)))
        r = self.client.delete(sb.id)
        self.destroyed.add(sb.id)
        assert r.status == 204, "destroy: %s" % r.describe()

        left = wait_until(lambda: not sandbox_processes(view), 10)
        assert left, "processes of %s survive its destroy:\n%s" % (
            sb.id, "\n".join(sandbox_processes(view)))
        assert not os.path.exists("/proc/%d" % view.pid) or _is_other_process(view.pid), \
            "the agent (host pid %d) survives" % view.pid
        gone = wait_until(lambda: not any(os.path.exists(d) for d in view.cgroups), 10)
        assert gone, "cgroups of %s survive its destroy: %s" % (
            sb.id, [d for d in view.cgroups if os.path.exists(d)])
        mounts = host_mounts_naming(sb.id, view.dir)
        assert not mounts, "host mounts name %s after destroy:\n%s" % (sb.id, "\n".join(mounts))

    def cleanup(self):
        for sb in self.victims:
            if sb.id not in self.destroyed:
                try:
                    self.client.delete(sb.id)
                except OSError:
                    pass


def _is_other_process(pid):
    """A pid that was recycled by an unrelated process (not a zombie of the sandbox)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            state = [ln for ln in f if ln.startswith("State:")][0]
        return "Z" not in state
    except (OSError, IndexError):
        return True


# ---- host-side planted files -------------------------------------------------------

class HostPlant:
    """A host directory outside every sandbox holding secret files (by default one,
    "secret"); the battery's canary for reads and writes that escape."""

    def __init__(self, names=("secret",), root="/tmp"):
        self.dir = os.path.join(root, "forge-sec-host-" + secrets.token_hex(6))
        os.mkdir(self.dir, 0o755)
        self.secret = b"HOST-SECRET-" + secrets.token_hex(12).encode()
        self.names = sorted(names)
        for n in self.names:
            with open(os.path.join(self.dir, n), "wb") as f:
                f.write(self.secret)
        self.file = os.path.join(self.dir, self.names[0])

    def untouched(self):
        """True when the directory holds exactly the planted files, unchanged."""
        try:
            if sorted(os.listdir(self.dir)) != self.names:
                return False
            for n in self.names:
                with open(os.path.join(self.dir, n), "rb") as f:
                    if f.read() != self.secret:
                        return False
            return True
        except OSError:
            return False

    def remove(self):
        for name in os.listdir(self.dir):
            p = os.path.join(self.dir, name)
            if os.path.isdir(p) and not os.path.islink(p):
                for sub in os.listdir(p):
                    os.unlink(os.path.join(p, sub))
                os.rmdir(p)
            else:
                os.unlink(p)
        os.rmdir(self.dir)


# ---- a pipelining HTTP/1.1 client --------------------------------------------------

class PipelinedConn:
    """One keep-alive connection that sends a batch of requests before reading any
    answer (HTTP/1.1 pipelining; forged answers them in order)."""

    def __init__(self, host, port, timeout=60.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")

    def close(self):
        self.rfile.close()
        self.sock.close()

    @staticmethod
    def build(method, target, body=None, close=False):
        head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, target)
        if body is not None:
            head += "Content-Length: %d\r\nContent-Type: application/octet-stream\r\n" % len(body)
        if close:
            head += "Connection: close\r\n"
        return head.encode() + b"\r\n" + (body or b"")

    def exchange(self, requests, close=False):
        """Sends every (method, target, body) at once; returns [(status, body bytes)].
        With close, the last request asks the server to close the connection after it."""
        last = len(requests) - 1
        self.sock.sendall(b"".join(self.build(*r, close=close and i == last)
                                   for i, r in enumerate(requests)))
        out = []
        for i, r in enumerate(requests):
            status, body, closing = self.read_response(r[0])
            out.append((status, body))
            if closing and i != last:
                raise ConnectionError("server closed the connection after %d %r" % (status, body[:200]))
        return out

    def read_response(self, method):
        line = self.rfile.readline()
        if not line:
            raise ConnectionError("connection closed before a response")
        m = re.match(rb"HTTP/1\.[01] (\d{3})", line)
        assert m, "bad status line %r" % line
        status = int(m.group(1))
        headers = {}
        while True:
            h = self.rfile.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        body = b""
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            pass
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        elif "content-length" in headers:
            body = self.rfile.read(int(headers["content-length"]))
        return status, body, headers.get("connection", "").lower() == "close"


def measure(fn, repeat=3):
    """Median wall time of fn() over `repeat` runs, in seconds."""
    times = []
    for _ in range(repeat):
        t = time.monotonic()
        fn()
        times.append(time.monotonic() - t)
    return sorted(times)[len(times) // 2]
