"""SECURITY.md battery, network: N1 N2 N3 N4 N5 N8."""

import os
import secrets
import socket
import subprocess

from secutil import describe, not_blocked

# Tries a TCP connect to each target from inside the sandbox; prints "<target> <outcome>"
# where outcome is "connected" or the exception's errno name.
_CONNECT = r'''
import errno, socket, sys
for t in sys.argv[1:]:
    host, _, port = t.rpartition(":")
    host = host.strip("[]")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, int(port)))
        out = "connected"
    except socket.timeout:
        out = "timeout"
    except OSError as e:
        out = errno.errorcode.get(e.errno, str(e.errno))
    print(t, out, flush=True)
'''


def _connect(sb, targets):
    sb.upload("/root/.connect.py", _CONNECT.encode())
    res = sb.shell("python3 /root/.connect.py " + " ".join("'%s'" % t for t in targets), timeout=120)
    assert res["exitCode"] == 0, res
    out = dict(line.rsplit(" ", 1) for line in res["stdout"].splitlines())
    assert set(out) == set(targets), out
    return out


def _reached(out):
    return {t: o for t, o in out.items() if o == "connected"}


def test_n1_metadata_address_unreachable(sec):
    sb = sec.new(probe=False)
    out = _connect(sb, ["169.254.169.254:80", "169.254.169.254:443", "169.254.170.2:80",
                        "[fd00:ec2::254]:80"])
    assert not _reached(out), "reached: %r" % out
    sec.finish()


def test_n2_host_loopback_unreachable(sec, forged):
    # a host listener on ::1 too, so there is something to reach there
    srv6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv6.bind(("::1", 0))
    srv6.listen(8)
    port6 = srv6.getsockname()[1]
    try:
        sb = sec.new(probe=False)
        out = _connect(sb, ["127.0.0.1:%d" % forged.port, "[::1]:%d" % port6,
                            "127.0.0.2:%d" % forged.port, "[::ffff:127.0.0.1]:%d" % forged.port,
                            "0.0.0.0:%d" % forged.port, "10.0.2.2:%d" % forged.port])
        assert not _reached(out), "reached the host's loopback services: %r" % out
    finally:
        srv6.close()
    sec.finish()


def _host_addresses():
    out = []
    r = subprocess.run(["ip", "-o", "addr", "show"], stdout=subprocess.PIPE, text=True)
    for line in r.stdout.splitlines():
        parts = line.split()
        fam, addr = parts[2], parts[3].split("/")[0]
        if parts[1] == "lo":
            continue
        out.append(("[%s]" % addr) if fam == "inet6" and not addr.startswith("fe80") else addr)
    return [a for a in out if not a.startswith("fe80")]


def test_n3_private_ranges_unreachable(sec):
    sb = sec.new(probe=False)
    targets = ["10.0.0.1:80", "10.0.2.2:80", "10.0.2.3:53", "100.64.0.1:80", "172.16.0.1:80",
               "172.17.0.1:80", "192.168.0.1:80", "192.168.1.1:80", "[fc00::1]:80",
               "[fd00::1]:80", "8.8.8.8:53"]
    targets += ["%s:22" % a for a in _host_addresses()]
    out = _connect(sb, targets)
    assert not _reached(out), "reached: %r" % out
    sec.finish()


def test_n4_host_abstract_sockets_invisible(sec):
    name = "forge-sec-%s" % secrets.token_hex(6)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind("\0" + name)
    srv.listen(8)
    try:
        with open("/proc/net/unix") as f:
            host_abstract = [ln.split()[-1] for ln in f.read().splitlines()[1:]
                             if ln.split()[-1].startswith("@")]
        sb = sec.new(probe=False)
        res = sb.shell("python3 -c \"import socket\ns = socket.socket(socket.AF_UNIX)\n"
                       "try:\n    s.connect('\\0%s'); print('connected')\n"
                       "except OSError as e: print('refused', e.errno)\"" % name)
        assert "connected" not in res["stdout"] and "refused" in res["stdout"], res
        inside = sb.sh("cat /proc/net/unix")
        seen = [a for a in host_abstract if a in inside]
        assert not seen, "host abstract sockets listed in the sandbox: %s" % seen
    finally:
        srv.close()
    sec.finish()


def test_n5_no_host_unix_socket_paths(sec, forged):
    sb = sec.new(probe=False)
    found = sb.sh("find / \\( -path /proc -o -path /sys \\) -prune -o -type s -print 2>/dev/null; true")
    assert found.strip() == "", "unix sockets in the sandbox's filesystem:\n" + found
    host = subprocess.run("find /run /var/run /tmp -maxdepth 3 -type s 2>/dev/null", shell=True,
                          stdout=subprocess.PIPE, text=True).stdout.split()
    host += [os.path.join(forged.state_dir, "sandboxes", sb.id, "agent.sock"),
             "/var/run/docker.sock", "/run/systemd/private", "/run/dbus/system_bus_socket"]
    script = "; ".join("[ -S '%s' ] && echo '%s'" % (p, p) for p in host) + "; true"
    leaked = sb.sh(script)
    assert leaked.strip() == "", "host socket paths present in the sandbox:\n" + leaked
    sec.finish()


def test_n8_no_link_changes_no_raw_bind(sec):
    sb = sec.new()
    for cmd in ("ip link add forge0 type dummy", "ip addr add 10.9.9.9/32 dev lo",
                "ip route add 10.9.0.0/16 dev lo", "ip link set lo mtu 1280",
                "ip link add forge1 type veth peer name forge2"):
        res = sb.shell(cmd)
        assert res["exitCode"] != 0, "went through: %s" % cmd
        assert "Operation not permitted" in res["stderr"] or "not permitted" in res["stderr"].lower() \
            or "Function not implemented" in res["stderr"], (cmd, res["stderr"])
    results = sec.syscalls(sb, "rawbind")
    bad = not_blocked(results, ["raw_bind_packet", "raw_bind_inet"])
    assert not bad, "raw sockets bind: %s" % describe(bad)
    sec.finish()
