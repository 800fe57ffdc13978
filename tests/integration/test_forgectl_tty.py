"""forgectl's terminals and background processes against a real forged: `shell` and
`exec -it` run inside tmux (a real terminal of a known size, typed into with send-keys,
read with capture-pane), `exec -i` streams stdin without a pty, and start / ps / logs /
kill drive the processes API."""

import os
import shutil
import subprocess
import time
import uuid

import pytest

from test_forgectl import forgectl_path, run_ctl

ROWS, COLS = 30, 100


@pytest.fixture(scope="module")
def ctl(forged):
    def call(*args, **kw):
        return run_ctl(forged.url, *args, **kw)
    return call


@pytest.fixture(scope="module")
def sbid(forged):
    sb = forged.client.create()
    yield sb.id
    forged.client.delete(sb.id)


def wait_for(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s" % what)


class Tmux:
    """A private tmux server (its own socket) with one session running one command."""

    def __init__(self, tmp_path):
        if not shutil.which("tmux"):
            pytest.fail("tmux is not installed (make deps installs it)", pytrace=False)
        self.socket = "forge-test-" + uuid.uuid4().hex[:12]
        self.dir = tmp_path

    def tmux(self, *args, check=True):
        r = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null"] + list(args),
                           capture_output=True, timeout=20)
        if check:
            assert r.returncode == 0, (args, r.stderr)
        return r.stdout.decode()

    def start(self, argv):
        """Runs argv in a ROWS x COLS pane: the terminal's settings are saved before
        and after (stty -g), the exit status is written to a file."""
        d = self.dir
        q = " ".join("'%s'" % a.replace("'", "'\\''") for a in argv)
        script = ("stty -g > %s/before; %s; echo $? > %s/code.tmp; mv %s/code.tmp %s/code; "
                  "stty -g > %s/after; sleep 600" % (d, q, d, d, d, d))
        self.tmux("new-session", "-d", "-s", "t", "-x", str(COLS), "-y", str(ROWS),
                  "sh", "-c", script)
        self.tmux("set-option", "-g", "status", "off")
        self.tmux("resize-window", "-t", "t", "-x", str(COLS), "-y", str(ROWS))

    def screen(self):
        return self.tmux("capture-pane", "-p", "-J", "-t", "t", "-S", "-200")

    def pane_size(self):
        rows, cols = self.tmux("display-message", "-p", "-t", "t",
                               "#{pane_height} #{pane_width}").split()
        return int(rows), int(cols)

    def type(self, text):
        self.tmux("send-keys", "-t", "t", "-l", text)
        self.tmux("send-keys", "-t", "t", "Enter")

    def forgectl_pid(self):
        """forgectl: the child of the pane's sh."""
        pane = int(self.tmux("display-message", "-p", "-t", "t", "#{pane_pid}").strip())
        with open("/proc/%d/task/%d/children" % (pane, pane)) as f:
            kids = f.read().split()
        return int(kids[0]) if kids else None

    def exit_code(self, timeout=20.0):
        path = os.path.join(str(self.dir), "code")
        wait_for(lambda: os.path.exists(path), timeout, "forgectl to exit")
        with open(path) as f:
            return int(f.read().strip())

    def tty_settings(self):
        def read(name):
            with open(os.path.join(str(self.dir), name)) as f:
                return f.read().strip()
        wait_for(lambda: os.path.exists(os.path.join(str(self.dir), "after")), 10, "stty -g")
        return read("before"), read("after")

    def kill(self):
        self.tmux("kill-server", check=False)


@pytest.fixture
def tmux(tmp_path):
    t = Tmux(tmp_path)
    yield t
    t.kill()


def ask(tmux, command, marker, timeout=20.0):
    """Types `command; echo MARKER` and returns the screen once MARKER shows."""
    tmux.type("%s; echo %s" % (command, marker))
    return wait_for(lambda: (lambda s: s if ("\n" + marker) in s else None)(tmux.screen()),
                    timeout, "%r on the screen" % marker)


def line_after(screen, marker_cmd_line_contains, marker):
    """The output line just before the echoed marker."""
    lines = screen.splitlines()
    idx = max(i for i, l in enumerate(lines) if l.strip() == marker)
    return lines[idx - 1].strip()


def test_shell_tty_size_resize_and_exit_code(forged, sbid, tmux):
    tmux.start([forgectl_path(), "--url", forged.url, "shell", sbid])
    rows, cols = tmux.pane_size()
    assert (rows, cols) == (ROWS, COLS)

    s = ask(tmux, "tty", "M1")
    assert line_after(s, "tty", "M1").startswith("/dev/pts/"), s
    s = ask(tmux, "stty size", "M2")
    assert line_after(s, "stty size", "M2") == "%d %d" % (ROWS, COLS), s

    tmux.tmux("resize-window", "-t", "t", "-x", "120", "-y", "40")
    assert tmux.pane_size() == (40, 120)
    s = wait_for(lambda: (lambda sc: sc if "40 120" in sc else None)(ask(tmux, "stty size", "M3")),
                 20, "the new size inside the sandbox")
    assert line_after(s, "stty size", "M3") == "40 120", s

    tmux.type("exit 3")
    assert tmux.exit_code() == 3
    before, after = tmux.tty_settings()
    assert before == after, "forgectl left the terminal changed"


def test_shell_keys_reach_the_remote_terminal(forged, sbid, tmux):
    """Raw mode: ^C goes to the remote shell (interrupting its command), not to forgectl."""
    tmux.start([forgectl_path(), "--url", forged.url, "shell", sbid])
    ask(tmux, "true", "READY")
    tmux.type("sleep 60")
    time.sleep(0.5)
    tmux.tmux("send-keys", "-t", "t", "C-c")
    s = ask(tmux, "echo alive-$((6*7))", "M4")
    assert "alive-42" in s
    assert not os.path.exists(os.path.join(str(tmux.dir), "code"))  # forgectl still runs
    tmux.type("exit")
    assert tmux.exit_code() == 0


def test_shell_sigterm_restores_terminal_and_kills_shell(forged, sbid, tmux, ctl):
    tmux.start([forgectl_path(), "--url", forged.url, "shell", sbid])
    ask(tmux, "echo $$ > /tmp/shell-pid", "READY")
    pid = wait_for(tmux.forgectl_pid, 10, "forgectl's pid")
    os.kill(pid, 15)
    assert tmux.exit_code() == 128 + 15
    before, after = tmux.tty_settings()
    assert before == after, "raw mode survived SIGTERM"
    # the shell forgectl started is gone too
    r = ctl("ps", sbid)
    assert r.returncode == 0, r.stderr
    running_shells = [l for l in r.stdout.decode().splitlines()[1:]
                      if " running " in l and "bash -l" in l]
    assert running_shells == [], r.stdout


def test_exec_it(forged, sbid, tmux):
    tmux.start([forgectl_path(), "--url", forged.url, "exec", "-it", sbid, "--",
                "tty; stty size; echo ready; read x; exit $x"])
    s = wait_for(lambda: (lambda sc: sc if "ready" in sc else None)(tmux.screen()), 20, "ready")
    lines = [l.strip() for l in s.splitlines() if l.strip()]
    assert lines[0].startswith("/dev/pts/"), s
    assert lines[1] == "%d %d" % (ROWS, COLS), s
    tmux.type("5")
    assert tmux.exit_code() == 5
    before, after = tmux.tty_settings()
    assert before == after


def test_exec_i_streams_stdin_without_a_pty(ctl, sbid):
    data = bytes(range(256)) * 1024 + b"end\n"  # binary: it travels base64-encoded
    r = ctl("exec", "-i", sbid, "--", "cat; tty; exit 6", input=data)
    assert r.returncode == 6, r.stderr
    assert r.stdout.startswith(data)
    assert r.stdout[len(data):] == b"not a tty\n"


def test_exec_i_interleaves_as_it_comes(forged, sbid):
    """Output arrives while the command runs, not at its end."""
    p = subprocess.Popen([forgectl_path(), "--url", forged.url, "exec", "-i", sbid, "--",
                          "echo first; read x; echo got-$x"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"first\n"
    p.stdin.write(b"yes\n")
    p.stdin.close()
    assert p.stdout.readline() == b"got-yes\n"
    assert p.wait(timeout=20) == 0


def test_start_ps_logs_follow(ctl, sbid):
    r = ctl("start", sbid, "--", "for i in 1 2 3; do echo line$i; echo err$i >&2; sleep 0.3; done; exit 4")
    assert r.returncode == 0, r.stderr
    pid = r.stdout.decode().strip()
    assert pid.isdigit()

    r = ctl("logs", "-f", sbid, pid)
    assert r.returncode == 4, r.stderr
    assert r.stdout == b"line1\nline2\nline3\n"
    assert r.stderr == b"err1\nerr2\nerr3\n"

    # afterwards: the buffered output, and exit status 0 for logs itself
    r = ctl("logs", sbid, pid)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"line1\nline2\nline3\n"

    r = ctl("ps", sbid)
    assert r.returncode == 0, r.stderr
    rows = [l.split() for l in r.stdout.decode().splitlines()]
    assert rows[0][:3] == ["PID", "STATUS", "EXIT"]
    mine = [row for row in rows[1:] if row[0] == pid]
    assert mine and mine[0][1] == "exited" and mine[0][2] == "4", r.stdout


def test_logs_follow_joins_a_running_process(ctl, sbid):
    r = ctl("start", sbid, "--", "echo early; sleep 1; echo late")
    pid = r.stdout.decode().strip()
    time.sleep(0.3)
    r = ctl("logs", "--follow", sbid, pid)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"early\nlate\n"  # the replay, then live


def test_kill_and_signal(ctl, sbid):
    pid = ctl("start", sbid, "--", "sleep 300").stdout.decode().strip()
    r = ctl("kill", "-s", "TERM", sbid, pid)
    assert r.returncode == 0, r.stderr
    r = ctl("logs", "-f", sbid, pid)
    assert r.returncode == 128 + 15

    pid = ctl("start", sbid, "--", "sleep 300").stdout.decode().strip()
    r = ctl("kill", sbid, pid)
    assert r.returncode == 0, r.stderr
    r = ctl("logs", "-f", sbid, pid)
    assert r.returncode == 128 + 9

    r = ctl("kill", sbid, "999999")
    assert r.returncode == 1 and r.stderr.startswith(b"forgectl: ")


def test_start_pty_and_attach_refusal(ctl, sbid):
    pid = ctl("start", sbid, "--", "sleep 30").stdout.decode().strip()
    r = ctl("attach", sbid, pid, input=b"")
    assert r.returncode == 1 and b"(no_pty)" in r.stderr
    ctl("kill", sbid, pid)


def test_unknown_process_and_usage(ctl, sbid):
    r = ctl("logs", sbid, "999999")
    assert r.returncode == 1 and r.stderr.startswith(b"forgectl: ")
    for args in (["logs", sbid], ["kill", "-s", "NOPE", sbid, "1"], ["start", sbid], ["shell"],
                 ["ps"], ["exec", "-itz", sbid, "true"]):
        r = ctl(*args)
        assert r.returncode == 2, (args, r.stderr)


@pytest.mark.parametrize("cmd", ["shell", "start", "ps", "logs", "kill", "attach"])
def test_help(cmd):
    r = run_ctl(None, cmd, "--help")
    assert r.returncode == 0 and r.stdout.startswith(b"Usage: forgectl " + cmd.encode())
