"""What a sandbox can see of the host, seen through the API (quick host-view checks;
the full battery lives in tests/security). SECURITY.md F1, F12, P5 and DESIGN.md
section 5 (ns)."""

import base64
import os
import secrets

import pytest

from forge_client import PS_SNIPPET, host_pids_matching, wait_until


@pytest.fixture
def host_markers():
    """Marker files in the host's /root and /home (removed afterwards)."""
    name = ".forge-it-%s" % secrets.token_hex(6)
    paths = []
    for d in ("/root", "/home"):
        p = os.path.join(d, name)
        with open(p, "w") as f:
            f.write("host marker\n")
        paths.append(p)
    yield name, paths
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass


def test_host_shadow_not_readable(sandbox):
    with open("/etc/shadow", "rb") as f:
        host = f.read()
    assert host
    res = sandbox.shell("base64 -w0 /etc/shadow")
    if res["exitCode"] == 0:
        assert base64.b64decode(res["stdout"]) != host, "the host's /etc/shadow is readable"
    # and no path trick reaches it either
    for p in ("/proc/1/root/etc/shadow", "/proc/self/root/etc/shadow", "/../../etc/shadow"):
        r = sandbox.shell("base64 -w0 %s" % p)
        assert r["exitCode"] != 0 or base64.b64decode(r["stdout"]) != host, p


def test_host_home_and_root_invisible(sandbox, host_markers):
    name, paths = host_markers
    out = sandbox.shell("ls -a /root /home; cat /root/%s /home/%s" % (name, name))
    assert name not in out["stdout"]
    assert "host marker" not in out["stdout"]
    assert sandbox.shell("test -e /home/%s || test -e /root/%s" % (name, name))["exitCode"] \
        != 0
    # the host's home directories are not there at all
    for home in os.listdir("/home"):
        if home != name:
            assert sandbox.shell("test -e /home/%s" % home)["exitCode"] != 0, home


def test_state_dir_invisible(sandbox, forged):
    rec = os.path.join(forged.state_dir, "sandboxes", sandbox.id, "sandbox.json")
    assert os.path.exists(rec), "state layout changed? %s missing on the host" % rec
    res = sandbox.shell("test -e %s || test -e %s" % (forged.state_dir, rec))
    assert res["exitCode"] != 0
    assert sandbox.shell("test -e %s/forged" % forged.bin_dir)["exitCode"] != 0


def test_root_inside(sandbox):
    assert sandbox.sh("id -u; id -g") == "0\n0\n"


def test_root_inside_is_not_host_root(sandbox):
    sandbox.sh("sleep 5252.5 > /dev/null 2>&1 &")
    pids = wait_until(lambda: host_pids_matching("sleep 5252.5"))  # cmdline is empty mid-exec
    assert pids
    with open("/proc/%d/status" % pids[0]) as f:
        uids = [ln for ln in f if ln.startswith("Uid:")][0].split()[1:]
    assert "0" not in uids, "sandbox root is host root: %r" % uids
    # (the sleep dies with the module's sandbox)


def test_network_only_loopback(sandbox):
    out = sandbox.sh("cat /proc/net/dev")
    ifaces = [ln.split(":")[0].strip() for ln in out.splitlines()[2:] if ":" in ln]
    assert ifaces == ["lo"], out
    res = sandbox.shell("ip -o link show 2>/dev/null || ip -o addr show 2>/dev/null")
    if res["exitCode"] == 0 and res["stdout"]:
        names = {ln.split(":")[1].strip().split("@")[0] for ln in res["stdout"].splitlines()}
        assert names == {"lo"}, res["stdout"]


def test_only_sandbox_processes(sandbox):
    out = sandbox.sh(PS_SNIPPET)
    lines = out.splitlines()
    pids = [int(ln.split()[0]) for ln in lines]
    assert 1 in pids, out
    assert len(pids) < 30, out
    for bad in ("pytest", "forged ", "systemd", "sshd", "/sbin/init"):
        assert bad not in out, (bad, out)


def test_environment_has_no_host_variables(sandbox, host_token):
    env = sandbox.sh("env; cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n'")
    assert host_token not in env
    assert "FORGE_TEST_HOST_TOKEN" not in env
    for var in ("PYTEST_CURRENT_TEST", "SSH_AUTH_SOCK", "FORGE_BUILD"):
        assert var + "=" not in env, var


def test_sandboxes_do_not_see_each_other(make_sandbox):
    a = make_sandbox()
    b = make_sandbox()
    a.sh("echo secret-a > /root/secret; echo tmp-a > /tmp/secret; sleep 3131.5 > /dev/null "
         "2>&1 &")
    assert b.shell("cat /root/secret /tmp/secret")["exitCode"] != 0
    assert "3131" not in b.sh(PS_SNIPPET)
    assert "3131" in a.sh(PS_SNIPPET)
    peek = b.shell("for p in /proc/[0-9]*; do cat $p/root/root/secret $p/root/tmp/secret; "
                   "done 2>/dev/null; true")
    assert "secret-a" not in peek["stdout"] and "tmp-a" not in peek["stdout"]
    b.upload("/root/secret", b"secret-b")
    assert a.sh("cat /root/secret") == "secret-a\n"
    assert a.download("/root/secret") == b"secret-a\n"


def test_new_sandbox_starts_empty(make_sandbox):
    a = make_sandbox()
    a.sh("echo leftover > /root/left; echo leftover > /tmp/left")
    b = make_sandbox()
    assert b.shell("cat /root/left /tmp/left")["exitCode"] != 0
    assert b.sh("ls -A /tmp") == ""


def test_hostname_is_sandbox_id(sandbox):
    assert sandbox.sh("cat /proc/sys/kernel/hostname") == sandbox.id + "\n"
    assert sandbox.sh("uname -n") == sandbox.id + "\n"


def test_runtimes_available(sandbox):
    assert sandbox.sh("python3 -c 'import sys; print(sys.version_info[0])'") == "3\n"
    assert sandbox.sh("node -e 'console.log(1 + 1)'") == "2\n"
    assert sandbox.sh("{ command -v sh; command -v bash; } | wc -l") == "2\n"


def test_image_writes_do_not_reach_host(sandbox):
    """The image is the read-only lower layer: a write lands in the sandbox (or fails)
    and never in the host's /usr or /etc."""
    name = "forge-it-write-%s" % secrets.token_hex(4)
    host_paths = ["/usr/bin/" + name, "/etc/" + name]
    try:
        sandbox.shell("touch %s" % " ".join(host_paths))
        leaked = [p for p in host_paths if os.path.exists(p)]
        assert leaked == [], "a sandbox write reached the host"
    finally:
        for p in host_paths:
            if os.path.lexists(p):
                os.unlink(p)
