"""forgectl against a real forged: every command, exit codes, streamed copies both ways,
and the errors a user sees. The usage tests at the end need only the forgectl binary."""

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


def _build_bin_dir():
    p = Path(os.environ.get("FORGE_BUILD", "build"))
    return (p if p.is_absolute() else REPO / p) / "bin"


def forgectl_path(bin_dir=None):
    path = Path(bin_dir or _build_bin_dir()) / "forgectl"
    if not os.access(path, os.X_OK):
        pytest.fail("forgectl not found at %s (build it with `make`)" % path, pytrace=False)
    return str(path)


def run_ctl(url, *args, input=None, timeout=120, env=None):
    """forgectl --url URL ARGS...; returns the CompletedProcess (bytes)."""
    argv = [forgectl_path()] + (["--url", url] if url else []) + list(args)
    return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def ctl(forged):
    def call(*args, **kw):
        return run_ctl(forged.url, *args, **kw)
    return call


@pytest.fixture
def sbid(ctl):
    """A fresh sandbox made with `forgectl create`, removed with `forgectl rm -f`."""
    r = ctl("create")
    assert r.returncode == 0, r.stderr
    sid = r.stdout.decode().strip()
    yield sid
    ctl("rm", "-f", sid)


def ids(ctl):
    r = ctl("ls", "-q")
    assert r.returncode == 0, r.stderr
    return set(r.stdout.decode().split())


# --- create, get, ls, rm, health -----------------------------------------------------


def test_health(ctl):
    r = ctl("health")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "ok"


def test_create_get_ls_rm(ctl):
    r = ctl("create", "--name", "ctl-test", "--cpus", "0.5", "--memory", "128", "--pids", "64",
            "--timeout-ms", "5000", "--env", "GREETING=hi there", "--metadata", "team=ctl")
    assert r.returncode == 0, r.stderr
    sid = r.stdout.decode().strip()
    assert len(sid) == 10 and sid[0].isalpha()

    r = ctl("get", sid)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["id"] == sid and doc["name"] == "ctl-test"
    assert doc["limits"]["memory_mb"] == 128 and doc["limits"]["pids"] == 64
    assert doc["limits"]["timeout_ms"] == 5000 and doc["limits"]["cpus"] == 0.5
    assert doc["env"] == {"GREETING": "hi there"} and doc["metadata"] == {"team": "ctl"}
    assert b"\n  " in r.stdout  # pretty-printed

    r = ctl("ls")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0].split() == ["ID", "STATUS", "IMAGE", "CREATED", "NAME"]
    row = [l for l in lines[1:] if l.startswith(sid)]
    assert len(row) == 1 and row[0].split()[-1] == "ctl-test" and "running" in row[0]

    r = ctl("ls", "-q", "--metadata", "team=ctl")
    assert r.stdout.decode().split() == [sid]

    r = ctl("exec", sid, "--", "echo $GREETING")
    assert r.stdout == b"hi there\n"

    r = ctl("rm", sid)
    assert r.returncode == 0, r.stderr
    assert sid not in ids(ctl)


def test_rm_several_and_force(ctl):
    a = ctl("create").stdout.decode().strip()
    b = ctl("create").stdout.decode().strip()
    r = ctl("rm", a, b)
    assert r.returncode == 0, r.stderr
    assert not {a, b} & ids(ctl)
    r = ctl("rm", a)
    assert r.returncode == 1 and b"sandbox_not_found" in r.stderr
    assert ctl("rm", "-f", a).returncode == 0


# --- exec ----------------------------------------------------------------------------


def test_exec_output_and_exit_code(ctl, sbid):
    r = ctl("exec", sbid, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == b"out\n" and r.stderr == b"err\n"


def test_exec_single_argument_is_a_shell_line(ctl, sbid):
    r = ctl("exec", sbid, "--", "printf 'a\\nb\\nc\\n' | wc -l")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == b"3"


def test_exec_quotes_each_argument(ctl, sbid):
    r = ctl("exec", sbid, "--", "printf", "[%s]\\n", "a b", "it's", "$HOME", "*", "")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"[a b]\n[it's]\n[$HOME]\n[*]\n[]\n"


def test_exec_without_dashdash(ctl, sbid):
    r = ctl("exec", sbid, "ls", "-d", "/")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"/\n"


def test_exec_cwd_and_env(ctl, sbid):
    r = ctl("exec", "--cwd", "/tmp", "-e", "A=1", "--env", "B=two words", sbid, "--",
            'echo "$PWD $A $B"')
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"/tmp 1 two words\n"


def test_exec_stdin(ctl, sbid):
    r = ctl("exec", "-i", sbid, "--", "tr", "a-z", "A-Z", input=b"hello\nworld\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"HELLO\nWORLD\n"
    # without -i our stdin is not read
    r = ctl("exec", sbid, "--", "cat", input=b"ignored")
    assert r.returncode == 0 and r.stdout == b""


def test_exec_timeout_is_124(ctl, sbid):
    t0 = time.monotonic()
    r = ctl("exec", "--timeout-ms", "500", sbid, "--", "sleep", "30")
    assert r.returncode == 124
    assert time.monotonic() - t0 < 20


def test_exec_signal_is_128_plus_n(ctl, sbid):
    r = ctl("exec", sbid, "--", "kill -9 $$")
    assert r.returncode == 128 + 9
    r = ctl("exec", sbid, "--", "kill -TERM $$")
    assert r.returncode == 128 + 15


def test_exec_unknown_sandbox(ctl):
    r = ctl("exec", "nosuchsbx0", "--", "true")
    assert r.returncode == 1
    assert r.stderr.startswith(b"forgectl: ") and b"(sandbox_not_found)" in r.stderr


# --- run -----------------------------------------------------------------------------


def test_run_creates_runs_destroys(ctl):
    before = ids(ctl)
    r = ctl("run", "--memory", "128", "--", "sh", "-c", "echo ran; exit 7")
    assert r.returncode == 7, r.stderr
    assert r.stdout == b"ran\n"
    assert ids(ctl) == before


def test_run_with_env_and_stdin(ctl):
    r = ctl("run", "-i", "--env", "X=42", "--", "read line; echo $X $line", input=b"abc\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"42 abc\n"


def test_run_destroys_on_failure(ctl):
    before = ids(ctl)
    r = ctl("run", "--cwd", "/no/such/dir", "--", "true")
    assert r.returncode != 0
    assert ids(ctl) == before


def test_run_destroys_on_sigint(forged, ctl):
    before = ids(ctl)
    p = subprocess.Popen([forgectl_path(forged.bin_dir), "--url", forged.url, "run", "--",
                          "sleep", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(ids(ctl) - before) == 0:
            time.sleep(0.1)
        assert len(ids(ctl) - before) == 1, "the run's sandbox never appeared"
        time.sleep(0.5)  # let the shell request start
        p.send_signal(signal.SIGINT)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 128 + signal.SIGINT
    assert ids(ctl) == before


# --- cp and ls ID:PATH ----------------------------------------------------------------


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def test_cp_5mb_binary_roundtrip(ctl, sbid, tmp_path):
    src = tmp_path / "blob.bin"
    src.write_bytes(os.urandom(5 * MiB + 123))
    r = ctl("cp", str(src), sbid + ":/tmp/in/blob.bin")
    assert r.returncode == 0, r.stderr

    r = ctl("exec", sbid, "--", "sha256sum /tmp/in/blob.bin")
    assert r.stdout.split()[0].decode() == _sha256(src)

    dst = tmp_path / "back.bin"
    r = ctl("cp", sbid + ":/tmp/in/blob.bin", str(dst))
    assert r.returncode == 0, r.stderr
    assert _sha256(dst) == _sha256(src)
    # no temporary file left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back.bin", "blob.bin"]


def test_cp_stdin_and_stdout(ctl, sbid):
    data = os.urandom(3 * MiB)
    r = ctl("cp", "-", sbid + ":/tmp/piped.bin", input=data)
    assert r.returncode == 0, r.stderr
    r = ctl("cp", sbid + ":/tmp/piped.bin", "-")
    assert r.returncode == 0, r.stderr
    assert r.stdout == data


def test_cp_into_directories(ctl, sbid, tmp_path):
    src = tmp_path / "note.txt"
    src.write_bytes(b"hello\n")
    assert ctl("mkdir", "-p", sbid + ":/tmp/box").returncode == 0
    r = ctl("cp", str(src), sbid + ":/tmp/box")  # an existing directory, no slash
    assert r.returncode == 0, r.stderr
    r = ctl("cp", str(src), sbid + ":/tmp/box2/")  # a slash: the name is kept
    assert r.returncode == 0, r.stderr
    r = ctl("exec", sbid, "--", "cat /tmp/box/note.txt /tmp/box2/note.txt")
    assert r.stdout == b"hello\nhello\n"

    out = tmp_path / "out"
    out.mkdir()
    r = ctl("cp", sbid + ":/tmp/box/note.txt", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "note.txt").read_bytes() == b"hello\n"


def test_cp_errors(ctl, sbid, tmp_path):
    dst = tmp_path / "never.txt"
    r = ctl("cp", sbid + ":/no/such/file", str(dst))
    assert r.returncode == 1 and b"(path_not_found)" in r.stderr
    assert not dst.exists() and list(tmp_path.iterdir()) == []

    r = ctl("cp", str(tmp_path / "missing"), sbid + ":/tmp/x")
    assert r.returncode == 1 and b"missing" in r.stderr

    r = ctl("cp", sbid + ":/tmp", str(dst))
    assert r.returncode == 1 and b"(is_a_directory)" in r.stderr

    r = ctl("cp", "-", "nosuchsbx0:/tmp/x", input=b"x")
    assert r.returncode == 1 and b"(sandbox_not_found)" in r.stderr


def test_ls_directory_and_rm_path(ctl, sbid):
    r = ctl("exec", sbid, "--", "mkdir -p /tmp/d/sub && printf 12345 > /tmp/d/five && "
            "ln -s five /tmp/d/link")
    assert r.returncode == 0, r.stderr
    r = ctl("ls", sbid + ":/tmp/d")
    assert r.returncode == 0, r.stderr
    rows = [l.split() for l in r.stdout.decode().splitlines()]
    names = [row[3] for row in rows]
    assert names == ["five", "link", "sub"]
    five = rows[0]
    assert five[0].startswith("-") and five[1] == "5"
    assert rows[1][0].startswith("l") and rows[2][0].startswith("d")

    r = ctl("ls", sbid + ":/tmp/d/five")  # a file lists as itself
    assert r.returncode == 0 and r.stdout.split()[3] == b"five"

    r = ctl("rm", sbid + ":/tmp/d")
    assert r.returncode == 1 and b"(directory_not_empty)" in r.stderr
    assert ctl("rm", "-r", sbid + ":/tmp/d").returncode == 0
    r = ctl("ls", sbid + ":/tmp/d")
    assert r.returncode == 1 and b"(path_not_found)" in r.stderr


def test_unknown_sandbox_everywhere(ctl):
    for args in (["get", "nosuchsbx0"], ["rm", "nosuchsbx0"], ["ls", "nosuchsbx0:/"],
                 ["exec", "nosuchsbx0", "true"]):
        r = ctl(*args)
        assert r.returncode == 1, args
        assert r.stderr.startswith(b"forgectl: ") and b"(sandbox_not_found)" in r.stderr, args


def test_url_from_environment(forged):
    env = dict(os.environ, FORGE_URL=forged.url)
    r = run_ctl(None, "health", env=env)
    assert r.returncode == 0, r.stderr


# --- without a server ----------------------------------------------------------------


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["--bogus", "ls"],
    ["create", "--cpus", "lots"],
    ["create", "--memory", "-5"],
    ["create", "--env", "NOEQUALS"],
    ["exec"],
    ["exec", "abc"],
    ["exec", "abc", "--"],
    ["run"],
    ["cp", "a", "b"],
    ["cp", "x:a", "y:b"],
    ["cp", "onlyone"],
    ["get"],
    ["rm"],
    ["ls", "not-a-remote-path"],
])
def test_bad_usage_exits_2(args):
    r = run_ctl("http://127.0.0.1:9", *args)
    assert r.returncode == 2, (args, r.stderr)
    assert r.stderr.startswith(b"forgectl") and r.stdout == b""


@pytest.mark.parametrize("cmd", ["create", "exec", "run", "cp", "ls", "get", "rm", "mkdir",
                                 "health"])
def test_help(cmd):
    r = run_ctl(None, cmd, "--help")
    assert r.returncode == 0 and r.stdout.startswith(b"Usage: forgectl " + cmd.encode())
    r = run_ctl(None, "--help")
    assert r.returncode == 0 and cmd.encode() in r.stdout


def test_no_server_is_a_clear_error():
    r = run_ctl("http://127.0.0.1:9", "ls")
    assert r.returncode == 1
    assert b"http://127.0.0.1:9" in r.stderr and b"(connection_failed)" in r.stderr
