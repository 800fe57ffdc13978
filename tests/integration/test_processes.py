"""Background processes (docs/api.md "Processes"): start, list, inspect, output and its
SSE follow, stdin, signals, kill, the PTY over a WebSocket, the streaming shell."""

import base64
import http.client
import json
import os
import re
import secrets
import signal
import socket
import struct
import threading
import time

import pytest

from forge_client import check_error, check_result, host_pids_matching, wait_until

PROCESS_KEYS = ("pid", "argv", "cwd", "pty", "status", "exit_code", "signal", "started_at",
                "ended_at", "stdout_dropped", "stderr_dropped")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
STATUSES = ("running", "exited", "killed", "timed_out", "oom_killed")


# ---- helpers ----

def check_process(p):
    for k in PROCESS_KEYS:
        assert k in p, "process object lacks %r: %r" % (k, p)
    assert isinstance(p["pid"], int) and p["pid"] > 0, p
    assert isinstance(p["argv"], list) and all(isinstance(a, str) for a in p["argv"]), p
    assert p["status"] in STATUSES, p
    assert TIME_RE.match(p["started_at"]), p
    if p["status"] == "running":
        assert p["exit_code"] is None and p["signal"] is None and p["ended_at"] is None, p
    else:
        assert isinstance(p["exit_code"], int) and TIME_RE.match(p["ended_at"]), p
        assert p["ended_at"] >= p["started_at"], p
    return p


def start(sb, expect=201, **body):
    r = sb.req("POST", "/processes", body)
    assert r.status == expect, r.describe()
    return check_process(r.json()) if expect == 201 else r


def get(sb, pid):
    r = sb.req("GET", "/processes/%d" % pid)
    assert r.status == 200, r.describe()
    return check_process(r.json())


def wait_done(sb, pid, timeout=30):
    p = wait_until(lambda: (lambda q: q if q["status"] != "running" else None)(get(sb, pid)),
                   timeout=timeout, interval=0.1)
    assert p, "process %d still running: %r" % (pid, get(sb, pid))
    return p


def output(sb, pid, query=""):
    r = sb.req("GET", "/processes/%d/output%s" % (pid, query))
    assert r.status == 200, r.describe()
    return r.json()


class SSE:
    """An SSE response read event by event (http.client undoes the chunking)."""

    def __init__(self, sb, path, method="GET", body=None, headers=None, timeout=60, rcvbuf=None):
        self.conn = http.client.HTTPConnection(sb.client.host, sb.client.port, timeout=timeout)
        if rcvbuf:
            self.conn.connect()
            self.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        self.conn.request(method, sb.path(path), body=data, headers=hdrs)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.content_type = (self.resp.getheader("Content-Type") or "").split(";")[0]

    def next(self):
        """-> (event, data) or None at the end of the stream."""
        event, data = None, []
        while True:
            line = self.resp.readline()
            if not line:
                return None
            line = line.decode("utf-8").rstrip("\n")
            if line == "":
                if event or data:
                    return event, json.loads("\n".join(data))
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])

    def all(self):
        out = []
        while True:
            ev = self.next()
            if ev is None:
                return out
            out.append(ev)

    def close(self):
        self.conn.close()


def follow(sb, pid, query="", **kw):
    s = SSE(sb, "/processes/%d/output?follow=1%s" % (pid, query), **kw)
    assert s.status == 200 and s.content_type == "text/event-stream", s.resp.read()
    return s


def stream_text(events, name="stdout"):
    return "".join(d["data"] for e, d in events if e == name)


def forged_rss_kb(forged):
    with open("/proc/%d/status" % forged.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class WebSocket:
    """A minimal RFC 6455 client: handshake, masked frames out, whole frames in."""

    def __init__(self, host, port, path, timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, "connection closed during the handshake: %r" % head
            head += chunk
        self.status = int(head.split(b" ")[1])
        self.head = head.decode()

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("connection closed")
            buf += chunk
        return buf

    def send(self, data, opcode=None):
        if isinstance(data, str):
            data, opcode = data.encode(), opcode or 1
        opcode = opcode or 2
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(head + mask + masked)

    def recv(self):
        """-> (opcode, payload); answers pings on the way."""
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._recv_exact(8))[0]
            assert not b1 & 0x80, "server frames are never masked"
            payload = self._recv_exact(n)
            opcode = b0 & 0x0F
            if opcode == 9:
                self.send(payload, opcode=10)
                continue
            return opcode, payload

    def read_to_close(self):
        """The terminal's bytes and the exit message (None if none came) until the
        server closes; then closes this end."""
        screen, exit_msg = b"", None
        while True:
            op, data = self.recv()
            if op == 2:
                screen += data
            elif op == 1:
                exit_msg = json.loads(data)
            elif op == 8:
                break
        self.close()
        return screen, exit_msg

    def close(self):
        self.sock.close()


# ---- start, list, inspect ----

def test_start_list_get(sandbox):
    p = start(sandbox, command="echo hi; sleep 0.2")
    assert p["argv"] == ["/bin/sh", "-c", "echo hi; sleep 0.2"]
    assert p["cwd"] == "/root" and p["pty"] is False
    q = start(sandbox, argv=["sh", "-c", "pwd; echo $FOO"], cwd="/tmp", env={"FOO": "bar"})
    assert q["argv"] == ["sh", "-c", "pwd; echo $FOO"] and q["cwd"] == "/tmp"
    r = sandbox.req("GET", "/processes")
    assert r.status == 200, r.describe()
    listed = r.json()["processes"]
    pids = [x["pid"] for x in listed]
    assert p["pid"] in pids and q["pid"] in pids
    assert pids.index(p["pid"]) < pids.index(q["pid"])  # oldest first
    for x in listed:
        check_process(x)
    done = wait_done(sandbox, p["pid"])
    assert done["status"] == "exited" and done["exit_code"] == 0 and done["signal"] is None
    wait_done(sandbox, q["pid"])
    assert output(sandbox, q["pid"])["stdout"] == "/tmp\nbar\n"
    # finished processes stay listed
    assert p["pid"] in [x["pid"] for x in sandbox.req("GET", "/processes").json()["processes"]]
    # the singular alias works too
    assert sandbox.client.request("GET", "/v1/sandbox/%s/processes/%d" % (sandbox.id, p["pid"])).status == 200


def test_output_snapshot(sandbox):
    p = start(sandbox, command="printf 'out\\n'; printf 'err\\n' >&2; printf '\\377bin'")
    wait_done(sandbox, p["pid"])
    o = output(sandbox, p["pid"])
    assert o["stdout"] == "out\n\ufffdbin" and o["stderr"] == "err\n"
    assert o["stdout_dropped"] == 0 and o["stderr_dropped"] == 0 and o["status"] == "exited"
    o = output(sandbox, p["pid"], "?encoding=base64")
    assert base64.b64decode(o["stdout_base64"]) == b"out\n\xffbin"
    assert base64.b64decode(o["stderr_base64"]) == b"err\n"


def test_ring_keeps_last_mib(sandbox):
    """3 MiB through a 1 MiB ring: the newest 1 MiB stays, the rest is counted."""
    p = start(sandbox, command="head -c 3145728 /dev/zero | tr '\\0' a; printf END")
    done = wait_done(sandbox, p["pid"])
    assert done["stdout_dropped"] == 3 * 1024 * 1024 + 3 - 1024 * 1024
    o = output(sandbox, p["pid"])
    assert len(o["stdout"]) == 1024 * 1024 and o["stdout"].endswith("aaaEND")
    assert o["stdout_dropped"] == done["stdout_dropped"]


# ---- follow ----

def test_replay_then_follow(sandbox):
    """Output printed before the follow comes first (replay), then the rest live."""
    p = start(sandbox, command="for i in $(seq 1 8); do echo line $i; sleep 0.3; done")
    assert wait_until(lambda: "line 2\n" in output(sandbox, p["pid"])["stdout"], timeout=10)
    s = follow(sandbox, p["pid"])
    t0 = time.monotonic()
    events, arrival = [], []
    while True:
        ev = s.next()
        assert ev is not None, "stream ended without exit"
        events.append(ev)
        arrival.append(time.monotonic() - t0)
        if ev[0] == "exit":
            break
    s.close()
    assert events[0][0] == "stdout" and events[0][1]["data"].startswith("line 1\nline 2\n")
    assert arrival[0] < 0.5  # the replay is immediate
    assert stream_text(events) == "".join("line %d\n" % i for i in range(1, 9))
    # the last line came live, well after the replay
    last = [i for i, (e, d) in enumerate(events) if e == "stdout" and "line 8" in d["data"]][0]
    assert arrival[last] > 1.0 and "line 1" not in events[last][1]["data"]
    exit_obj = check_process(events[-1][1])
    assert exit_obj["status"] == "exited" and exit_obj["exit_code"] == 0


def test_follow_finished_process_and_base64(sandbox):
    p = start(sandbox, command="printf 'a\\0b'; printf e >&2")
    wait_done(sandbox, p["pid"])
    events = follow(sandbox, p["pid"], "&encoding=base64").all()
    out = b"".join(base64.b64decode(d["data_base64"]) for e, d in events if e == "stdout")
    err = b"".join(base64.b64decode(d["data_base64"]) for e, d in events if e == "stderr")
    assert out == b"a\0b" and err == b"e"
    assert events[-1][0] == "exit" and events[-1][1]["pid"] == p["pid"]


def test_follow_keeps_utf8_characters_whole(sandbox):
    """A character split across two writes is never replaced."""
    p = start(sandbox, command="printf '\\342\\234'; sleep 0.5; printf '\\223 ok'")
    events = follow(sandbox, p["pid"]).all()
    assert stream_text(events) == "\u2713 ok"


def test_many_followers_identical(sandbox):
    n = 20
    p = start(sandbox, command="sleep 1; seq 1 30000; echo tail >&2; sleep 0.5; seq 30001 40000")
    results = [None] * n

    def reader(i):
        results[i] = follow(sandbox, p["pid"]).all()

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    expect = "".join("%d\n" % i for i in range(1, 40001))
    for events in results:
        assert events is not None and events[-1][0] == "exit"
        assert stream_text(events) == expect
        assert stream_text(events, "stderr") == "tail\n"
        assert not [e for e, d in events if e == "dropped"]


def test_follower_disconnect_affects_nobody(sandbox):
    p = start(sandbox, command="for i in $(seq 1 10); do echo $i; sleep 0.2; done")
    a, b = follow(sandbox, p["pid"]), follow(sandbox, p["pid"])
    assert a.next()[0] == "stdout"
    a.close()  # gone mid-stream
    events = b.all()
    assert stream_text(events) == "".join("%d\n" % i for i in range(1, 11))
    assert events[-1][0] == "exit" and events[-1][1]["status"] == "exited"
    assert get(sandbox, p["pid"])["exit_code"] == 0


def test_slow_reader_fast_writer(forged, sandbox):
    """1 GiB through a follow read slowly: the writer never waits, the reader misses
    bytes (told by `dropped`), and forged's memory stays bounded."""
    base_kb = forged_rss_kb(forged)
    san = "san" in os.environ.get("FORGE_BUILD", "")
    p = start(sandbox, command="head -c 1073741824 /dev/zero")
    s = follow(sandbox, p["pid"], "&encoding=base64", rcvbuf=32 * 1024, timeout=300)
    got = dropped = 0
    peak_kb = base_kb
    n = 0
    while True:
        ev = s.next()
        assert ev is not None, "stream ended without exit"
        name, data = ev
        if name == "stdout":
            got += len(base64.b64decode(data["data_base64"]))
        elif name == "dropped":
            assert data["stream"] == "stdout"
            dropped += data["bytes"]
        elif name == "exit":
            break
        n += 1
        if n % 20 == 0:
            peak_kb = max(peak_kb, forged_rss_kb(forged))
            time.sleep(0.01)  # a slow reader
    s.close()
    assert data["status"] == "exited" and data["exit_code"] == 0
    assert dropped > 0
    assert got + dropped == 1 << 30
    assert data["stdout_dropped"] == (1 << 30) - 1024 * 1024
    limit_mb = 400 if san else 64  # ASan keeps freed memory in quarantine
    assert (peak_kb - base_kb) < limit_mb * 1024, (base_kb, peak_kb)


def test_destroy_ends_followers(make_sandbox):
    sb = make_sandbox()
    p = start(sb, command="echo started; sleep 300")
    s = follow(sb, p["pid"])
    assert s.next() == ("stdout", {"data": "started\n"})
    assert sb.delete().status == 204
    ev = s.next()
    assert ev[0] == "exit" and ev[1]["status"] == "killed", ev
    assert s.next() is None
    s.close()


# ---- stdin ----

def test_stdin_write_and_close(sandbox):
    p = start(sandbox, command="cat; echo closed", stdin=True)
    r = sandbox.req("POST", "/processes/%d/stdin" % p["pid"], {"data": "hello\n"})
    assert r.status == 204, r.describe()
    r = sandbox.req("POST", "/processes/%d/stdin" % p["pid"],
                    {"data_base64": base64.b64encode(b"w\0rld\n").decode()})
    assert r.status == 204, r.describe()
    assert get(sandbox, p["pid"])["status"] == "running"  # cat waits for more
    r = sandbox.req("POST", "/processes/%d/stdin" % p["pid"], {"data": "bye\n", "close": True})
    assert r.status == 204, r.describe()
    done = wait_done(sandbox, p["pid"])
    assert done["status"] == "exited"
    o = output(sandbox, p["pid"], "?encoding=base64")
    assert base64.b64decode(o["stdout_base64"]) == b"hello\nw\0rld\nbye\nclosed\n"
    check_error(sandbox.req("POST", "/processes/%d/stdin" % p["pid"], {"data": "late"}), 409,
                "stdin_closed")


def test_stdin_close_alone_and_not_opened(sandbox):
    p = start(sandbox, command="wc -c", stdin=True)
    sandbox.req("POST", "/processes/%d/stdin" % p["pid"], {"data": "12345"})
    r = sandbox.req("POST", "/processes/%d/stdin" % p["pid"], {"close": True})
    assert r.status == 204, r.describe()
    wait_done(sandbox, p["pid"])
    assert output(sandbox, p["pid"])["stdout"].strip() == "5"
    # without "stdin": true the process reads EOF and stdin cannot be written
    q = start(sandbox, command="cat; sleep 5")
    check_error(sandbox.req("POST", "/processes/%d/stdin" % q["pid"], {"data": "x"}), 409,
                "stdin_closed")
    sandbox.req("DELETE", "/processes/%d" % q["pid"])


# ---- signals, kill, exit kinds ----

@pytest.mark.parametrize("sig,name,number", [("SIGTERM", "SIGTERM", 15), ("INT", "SIGINT", 2),
                                             ("usr1", "SIGUSR1", 10), (9, "SIGKILL", 9),
                                             ("15", "SIGTERM", 15)])
def test_signal_by_name_and_number(sandbox, sig, name, number):
    p = start(sandbox, argv=["sleep", "300"])
    r = sandbox.req("POST", "/processes/%d/signal" % p["pid"], {"signal": sig})
    assert r.status == 204, r.describe()
    done = wait_done(sandbox, p["pid"])
    assert done["status"] == "killed" and done["signal"] == name
    assert done["exit_code"] == 128 + number


def test_signal_handled_by_process(sandbox):
    p = start(sandbox, command="trap 'echo got-term; exit 4' TERM; echo ready; while :; do sleep 0.1; done")
    assert wait_until(lambda: output(sandbox, p["pid"])["stdout"] == "ready\n", timeout=10)
    assert sandbox.req("POST", "/processes/%d/signal" % p["pid"], {"signal": "SIGTERM"}).status == 204
    done = wait_done(sandbox, p["pid"])
    assert done["status"] == "exited" and done["exit_code"] == 4 and done["signal"] is None
    assert output(sandbox, p["pid"])["stdout"] == "ready\ngot-term\n"
    check_error(sandbox.req("POST", "/processes/%d/signal" % p["pid"], {"signal": "SIGTERM"}), 409,
                "process_not_running")


def test_exit_kinds(make_sandbox, sandbox):
    p = start(sandbox, command="exit 7")
    done = wait_done(sandbox, p["pid"])
    assert (done["status"], done["exit_code"], done["signal"]) == ("exited", 7, None)

    p = start(sandbox, command="kill -SEGV $$")
    done = wait_done(sandbox, p["pid"])
    assert (done["status"], done["exit_code"], done["signal"]) == ("killed", 128 + 11, "SIGSEGV")

    p = start(sandbox, argv=["sleep", "300"], timeout_ms=500)
    done = wait_done(sandbox, p["pid"])
    assert done["status"] == "timed_out" and done["exit_code"] == 124 and done["signal"] == "SIGKILL"

    small = make_sandbox({"limits": {"memory_mb": 64}})
    p = start(small, command="python3 -c 'a = b\"x\" * (1 << 30); print(len(a))'")
    done = wait_done(small, p["pid"], timeout=60)
    assert done["status"] == "oom_killed" and done["exit_code"] != 0, done
    assert "1073741824" not in output(small, p["pid"])["stdout"]


def test_kill_whole_tree(sandbox):
    token = "4242.%d" % secrets.randbelow(1000)
    p = start(sandbox, command="setsid sleep %s & sleep %s & echo started; wait" % (token, token))
    # the two sleeps, and the shell whose command line names them
    assert wait_until(lambda: len(host_pids_matching("sleep " + token)) >= 3, timeout=10)
    r = sandbox.req("DELETE", "/processes/%d" % p["pid"])
    assert r.status == 204, r.describe()
    done = get(sandbox, p["pid"])  # DELETE answers once it is gone
    assert done["status"] == "killed" and done["signal"] == "SIGKILL"
    assert wait_until(lambda: not host_pids_matching("sleep " + token), timeout=10)
    # again on a finished process: nothing to do
    assert sandbox.req("DELETE", "/processes/%d" % p["pid"]).status == 204
    assert get(sandbox, p["pid"])["status"] == "killed"  # still listed


# ---- PTY ----

def test_pty_output(sandbox):
    p = start(sandbox, command="tty; stty size; echo err >&2; echo $TERM", pty={"rows": 33, "cols": 101})
    assert p["pty"] is True
    wait_done(sandbox, p["pid"])
    o = output(sandbox, p["pid"])
    assert re.match(r"^/dev/pts/\d+\r\n33 101\r\nerr\r\nxterm-256color\r\n$", o["stdout"]), o
    assert o["stderr"] == ""


def test_attach_websocket(forged, sandbox):
    p = start(sandbox, command="tty; stty size; read line; echo \"got $line\"; stty size",
              pty={"rows": 24, "cols": 80})
    ws = WebSocket(forged.client.host, forged.client.port,
                   sandbox.path("/processes/%d/attach" % p["pid"]))
    assert ws.status == 101, ws.head
    screen = b""
    while b"24 80\r\n" not in screen:
        op, data = ws.recv()
        assert op == 2, (op, data)
        screen += data
    assert re.search(rb"/dev/pts/\d+\r\n24 80\r\n", screen), screen
    ws.send(json.dumps({"type": "resize", "rows": 40, "cols": 120}))
    time.sleep(0.2)  # the resize is a separate request to the agent: let it land first
    ws.send(b"hello\n")
    rest, exit_msg = ws.read_to_close()
    screen += rest
    assert b"got hello\r\n40 120\r\n" in screen, screen
    assert exit_msg and exit_msg["type"] == "exit" and exit_msg["status"] == "exited", exit_msg
    assert exit_msg["pid"] == p["pid"] and exit_msg["exit_code"] == 0


def test_attach_interactive_shell(forged, sandbox):
    """An interactive shell: input typed over the socket runs, Ctrl-D ends it."""
    p = start(sandbox, argv=["sh", "-i"], pty={"rows": 24, "cols": 80})
    ws = WebSocket(forged.client.host, forged.client.port,
                   sandbox.path("/processes/%d/attach" % p["pid"]))
    assert ws.status == 101, ws.head
    ws.send(b"echo $((6*7))-answer\n")
    screen = b""
    while b"42-answer" not in screen:
        op, data = ws.recv()
        if op == 2:
            screen += data
    ws.send(b"exit 3\n")
    _, msg = ws.read_to_close()
    assert msg and msg["type"] == "exit" and msg["exit_code"] == 3, msg
    assert get(sandbox, p["pid"])["exit_code"] == 3


# ---- streaming shell ----

def test_streaming_shell(sandbox):
    s = SSE(sandbox, "/shell", method="POST", headers={"Accept": "text/event-stream"},
            body={"command": "echo one; sleep 0.3; echo two >&2; echo three; exit 2"})
    assert s.status == 200 and s.content_type == "text/event-stream"
    events = s.all()
    s.close()
    assert [e for e, d in events][-1] == "exit"
    res = check_result(events[-1][1])
    assert res["exitCode"] == 2 and res["success"] is False
    assert stream_text(events) == "one\nthree\n" == res["stdout"]
    assert stream_text(events, "stderr") == "two\n" == res["stderr"]
    # the blocking form is unchanged
    r = sandbox.shell_raw({"command": "echo plain"})
    assert r.status == 200 and r.content_type == "application/json" and r.json()["stdout"] == "plain\n"


def test_streaming_shell_errors_and_timeout(sandbox):
    r = sandbox.req("POST", "/shell", {"cmd": "x"}, headers={"Accept": "text/event-stream"})
    check_error(r, 400, "invalid_request")
    s = SSE(sandbox, "/shell", method="POST", headers={"Accept": "text/event-stream"},
            body={"command": "echo before; sleep 30", "timeout_ms": 500})
    events = s.all()
    s.close()
    res = check_result(events[-1][1])
    assert res["timedOut"] is True and res["exitCode"] == 124 and stream_text(events) == "before\n"


# ---- errors ----

def test_unknown_pid_404(sandbox):
    for method, suffix, body in (("GET", "", None), ("DELETE", "", None), ("GET", "/output", None),
                                 ("GET", "/output?follow=1", None), ("POST", "/stdin", {"data": "x"}),
                                 ("POST", "/signal", {"signal": "SIGTERM"}), ("GET", "/attach", None)):
        check_error(sandbox.req(method, "/processes/999999" + suffix, body), 404, "process_not_found")
    check_error(sandbox.req("GET", "/processes/abc"), 404, "process_not_found")
    check_error(sandbox.client.request("GET", "/v1/sandboxes/nosuchsbx0/processes"), 404,
                "sandbox_not_found")


def test_attach_without_pty_409(forged, sandbox):
    p = start(sandbox, argv=["sleep", "30"])
    check_error(sandbox.req("GET", "/processes/%d/attach" % p["pid"]), 409, "no_pty")
    ws = WebSocket(forged.client.host, forged.client.port,
                   sandbox.path("/processes/%d/attach" % p["pid"]))
    assert ws.status == 409, ws.head
    ws.close()
    sandbox.req("DELETE", "/processes/%d" % p["pid"])


@pytest.mark.parametrize("body", [
    {},
    {"command": "x", "argv": ["x"]},
    {"argv": []},
    {"argv": "ls"},
    {"argv": [1]},
    {"argv": [""]},
    {"command": 5},
    {"command": "x", "bogus": 1},
    {"command": "x", "stdin": "yes"},
    {"command": "x", "pty": {"rows": 0, "cols": 80}},
    {"command": "x", "pty": {"rows": 24, "columns": 80}},
    {"command": "x", "pty": "big"},
    {"command": "x", "timeout_ms": 0},
    {"command": "x", "env": {"A": 1}},
])
def test_bad_start_bodies(sandbox, body):
    check_error(sandbox.req("POST", "/processes", body), 400, "invalid_request")


def test_bad_bodies_and_queries(sandbox):
    check_error(sandbox.req("POST", "/processes", b"not json",
                            headers={"Content-Type": "application/json"}), 400, "invalid_json")
    r = sandbox.req("POST", "/processes", {"argv": ["/no/such/binary"]})
    check_error(r, 400, "spawn_failed")
    p = start(sandbox, command="cat", stdin=True)
    pid = p["pid"]
    for body in ({}, {"data": "a", "data_base64": "YQ=="}, {"data": 5}, {"data_base64": "***"},
                 {"data": "a", "close": "yes"}, {"data": "a", "more": 1}):
        check_error(sandbox.req("POST", "/processes/%d/stdin" % pid, body), 400, "invalid_request")
    for body in ({}, {"signal": "SIGNOPE"}, {"signal": 0}, {"signal": 65}, {"signal": None},
                 {"signal": "TERM", "x": 1}):
        check_error(sandbox.req("POST", "/processes/%d/signal" % pid, body), 400, "invalid_request")
    check_error(sandbox.req("GET", "/processes/%d/output?encoding=hex" % pid), 400, "invalid_request")
    check_error(sandbox.req("GET", "/processes/%d/output?follow=maybe" % pid), 400, "invalid_request")
    check_error(sandbox.req("PUT", "/processes/%d" % pid), 405, "method_not_allowed")
    # nothing of this touched the process
    assert get(sandbox, pid)["status"] == "running"
    sandbox.req("DELETE", "/processes/%d" % pid)


# ---- surviving forged: the agent retains processes (docs/processes.md) ----

COUNTER = "i=0; while :; do echo $i; i=$((i+1)); sleep 0.1; done"


def counter_lines(text):
    """The counter's lines, checked to be consecutive from the first one held."""
    lines = [int(x) for x in text.splitlines()]
    assert lines == list(range(lines[0], lines[0] + len(lines))), text[-400:]
    return lines


def follow_until_line(s, above, timeout=15):
    """Reads a follow until a counter line greater than `above` arrives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ev = s.next()
        assert ev is not None, "the follow ended"
        if ev[0] == "stdout" and any(int(x) > above for x in ev[1]["data"].split()):
            return
    raise AssertionError("no line above %d" % above)


def test_restart_keeps_running_processes(forged_fn):
    """kill -9 forged while a counter runs: after the restart the same pid is running, its
    output holds every line from before and during the outage, follow goes on live, stdin
    of another process still works, and signals and DELETE reach them."""
    sb = forged_fn.client.create()
    counter = start(sb, command=COUNTER)
    cat = start(sb, command="cat", stdin=True)
    assert sb.req("POST", "/processes/%d/stdin" % cat["pid"], {"data": "before\n"}).status == 204
    assert wait_until(lambda: len(output(sb, counter["pid"])["stdout"].split()) >= 5, timeout=10)
    forged_fn.kill9()
    time.sleep(1.5)
    forged_fn.start()

    p = get(sb, counter["pid"])
    assert p["status"] == "running" and p["argv"] == counter["argv"], p
    assert p["started_at"] == counter["started_at"] and p["stdout_dropped"] == 0, p
    lines = counter_lines(output(sb, counter["pid"])["stdout"])
    assert lines[0] == 0 and len(lines) >= 5 + 10, lines  # 1.5 s of outage: 15 more lines
    pids = [q["pid"] for q in sb.req("GET", "/processes").json()["processes"]]
    assert pids == [counter["pid"], cat["pid"]]

    s = follow(sb, counter["pid"])
    follow_until_line(s, lines[-1] + 3)
    s.close()

    assert sb.req("POST", "/processes/%d/stdin" % cat["pid"], {"data": "after\n"}).status == 204
    assert wait_until(lambda: output(sb, cat["pid"])["stdout"] == "before\nafter\n", timeout=10)
    r = sb.req("POST", "/processes/%d/signal" % counter["pid"], {"signal": "SIGTERM"})
    assert r.status == 204, r.describe()
    done = wait_done(sb, counter["pid"])
    assert done["status"] == "killed" and done["signal"] == "SIGTERM", done
    r = sb.req("DELETE", "/processes/%d" % cat["pid"])
    assert r.status in (200, 204), r.describe()
    assert get(sb, cat["pid"])["status"] == "killed"


def test_graceful_restart_keeps_terminal_process(forged_fn):
    """A stop with SIGTERM (not only kill -9) leaves processes to the agent too: a process
    on a terminal comes back with its pty flag, takes typed input and sees its size."""
    sb = forged_fn.client.create()
    p = start(sb, command="stty size; read x; echo \"got $x\"", pty={"rows": 30, "cols": 90})
    assert wait_until(lambda: "30 90" in output(sb, p["pid"])["stdout"], timeout=10)
    forged_fn.restart()
    q = get(sb, p["pid"])
    assert q["status"] == "running" and q["pty"] is True and q["argv"] == p["argv"], q
    assert sb.req("POST", "/processes/%d/stdin" % p["pid"], {"data": "hi\r"}).status == 204
    done = wait_done(sb, p["pid"])
    assert done["status"] == "exited" and done["exit_code"] == 0, done
    assert re.match(r"^30 90\r\nhi\r\ngot hi\r\n$", output(sb, p["pid"])["stdout"])


def test_restart_reports_real_exit(forged_fn):
    """Processes that end while forged is down report how they really ended (and so does
    one that ended before), with their output on both streams."""
    sb = forged_fn.client.create()
    before = start(sb, command="echo early; exit 5")
    wait_done(sb, before["pid"])
    code3 = start(sb, command="echo hi; sleep 1; echo bye >&2; exit 3")
    usr1 = start(sb, command="sleep 1; kill -USR1 $$")
    forged_fn.kill9()
    time.sleep(2.5)
    forged_fn.start()

    done = get(sb, code3["pid"])
    assert done["status"] == "exited" and done["exit_code"] == 3 and done["signal"] is None, done
    assert done["ended_at"] >= done["started_at"]
    o = output(sb, code3["pid"])
    assert o["stdout"] == "hi\n" and o["stderr"] == "bye\n", o
    done = get(sb, usr1["pid"])
    assert done["status"] == "killed" and done["signal"] == "SIGUSR1" and done["exit_code"] == 138, done
    done = get(sb, before["pid"])
    assert done["status"] == "exited" and done["exit_code"] == 5, done
    assert output(sb, before["pid"])["stdout"] == "early\n"


def test_restart_while_suspended(forged_fn):
    """A suspended sandbox's agent is frozen with its processes: forged restarts, the first
    call resumes the sandbox and then adopts the process, which goes on counting."""
    sb = forged_fn.client.create()
    counter = start(sb, command=COUNTER)
    assert wait_until(lambda: len(output(sb, counter["pid"])["stdout"].split()) >= 3, timeout=10)
    r = sb.req("POST", "/suspend")
    assert r.status == 200, r.describe()
    forged_fn.kill9()
    forged_fn.start()
    assert sb.get()["status"] == "suspended"
    p = get(sb, counter["pid"])
    assert p["status"] == "running", p
    s = follow(sb, counter["pid"])
    follow_until_line(s, counter_lines(output(sb, counter["pid"])["stdout"])[-1] + 2)
    s.close()


def test_restart_output_over_ring(forged_fn):
    """3 MB printed while forged is down: the agent's ring keeps the newest 1 MiB and the
    dropped count says how much came before it."""
    sb = forged_fn.client.create()
    p = start(sb, command="sleep 1; head -c 3000000 /dev/zero | tr '\\0' a; printf END")
    forged_fn.kill9()
    time.sleep(3)
    forged_fn.start()
    done = wait_done(sb, p["pid"])
    assert done["status"] == "exited" and done["exit_code"] == 0, done
    assert done["stdout_dropped"] == 3000000 + 3 - 1024 * 1024, done
    o = output(sb, p["pid"])
    assert len(o["stdout"]) == 1024 * 1024 and o["stdout"].endswith("aaaEND")


def test_agent_connection_drop_keeps_processes(forged_fn):
    """Another connection to the agent replaces forged's (the agent serves one): forged
    keeps its processes running, not killed, and adopts them again by itself within about
    a second, so a follower opened before the drop goes on with no gap and no other call."""
    sb = forged_fn.client.create()
    counter = start(sb, command=COUNTER)
    s = follow(sb, counter["pid"])
    follow_until_line(s, 3)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.path.join(forged_fn.state_dir, "sandboxes", sb.id, "agent.sock"))
    assert sock.recv(12)[4] == 1  # the agent's HELLO: forged's connection is gone
    follow_until_line(s, 3 + 25)  # 2.5 s of counting: re-adopted meanwhile
    s.close()
    sock.close()
    p = get(sb, counter["pid"])
    assert p["status"] == "running", p
    lines = counter_lines(output(sb, counter["pid"])["stdout"])
    assert lines[0] == 0 and len(lines) >= 3 + 25, lines
    r = sb.req("DELETE", "/processes/%d" % counter["pid"])
    assert r.status in (200, 204), r.describe()


def test_agent_death_ends_processes(forged_fn):
    """When the sandbox's agent dies (and its processes with it), forged notices by itself:
    a follower gets the exit (killed, SIGKILL) without any other call."""
    sb = forged_fn.client.create()
    counter = start(sb, command=COUNTER)
    s = follow(sb, counter["pid"], timeout=15)
    follow_until_line(s, 2)
    with open(os.path.join(forged_fn.state_dir, "sandboxes", sb.id, "ns.pid")) as f:
        agent = int(f.read().split()[0])
    os.kill(agent, signal.SIGKILL)
    events = s.all()
    assert events and events[-1][0] == "exit", events[-3:]
    assert events[-1][1]["status"] == "killed" and events[-1][1]["signal"] == "SIGKILL"


def test_destroy_ends_detached_processes(forged_fn):
    """A process whose agent connection dropped ends as killed when its sandbox is destroyed,
    and its followers get the exit."""
    sb = forged_fn.client.create()
    counter = start(sb, command=COUNTER)
    s = follow(sb, counter["pid"])
    follow_until_line(s, 2)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.path.join(forged_fn.state_dir, "sandboxes", sb.id, "agent.sock"))
    assert sock.recv(12)[4] == 1
    time.sleep(0.3)
    assert forged_fn.client.delete(sb.id).status in (200, 204)
    sock.close()
    events = s.all()
    assert events and events[-1][0] == "exit", events[-3:]
    assert events[-1][1]["status"] == "killed" and events[-1][1]["signal"] == "SIGKILL"
