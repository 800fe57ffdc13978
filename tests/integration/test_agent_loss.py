"""When a sandbox's agent dies or stops answering (docs/architecture.md, "State and what
survives what"; docs/api.md, agent_unavailable).

A dead agent (its init killed) is booted again by the next call, on forged's thread pool:
calls that come meanwhile wait for that one revive. A silent agent (stopped, wedged) is
given --agent-timeout-ms while a request waits for its reply; then the connection is
dropped, the call fails with 503 agent_unavailable, and the next call connects again.
Long but healthy work (a quiet command, a paused upload or download) is never cut."""

import json
import os
import re
import signal
import socket
import time

import pytest

from forge_client import MiB, check_error, q, read_response, stream_request, wait_until

SILENCE_MS = 1000  # --agent-timeout-ms of the forged these tests start


def agent_pid(forged, sb):
    """The host pid of an ns sandbox's agent (its PID 1)."""
    with open(os.path.join(forged.state_dir, "sandboxes", sb.id, "ns.pid")) as f:
        return int(f.read().split()[0])


def pid_is_gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def log_count(forged, text):
    return forged.log_tail(limit=4 << 20).count(text)


@pytest.fixture
def quick(forged_factory):
    """A forged that gives up on a silent agent after SILENCE_MS."""
    return forged_factory(["--agent-timeout-ms", str(SILENCE_MS)])


def test_killed_agent_is_revived_once_for_concurrent_calls(forged, make_sandbox):
    """Calls that find the agent gone, or come while it boots again, share one revive and
    all get their answer from the revived sandbox, with its files."""
    sb = make_sandbox()
    sb.sh("echo kept > /root/kept.txt && sync")
    pid = agent_pid(forged, sb)
    gone = "sandbox=%s agent is gone" % sb.id
    back = re.compile(r"sandbox=%s agent was gone; sandbox restarted with its files in \d+ ms "
                      r"for (\d+) calls?" % sb.id)
    before = log_count(forged, gone), len(back.findall(forged.log_tail(limit=4 << 20)))
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: pid_is_gone(pid), timeout=10)
    time.sleep(0.5)  # forged sees the connection end on a later turn of its loop
    # Connected first, then sent back to back: the revive (milliseconds for ns) is still
    # under way when the later ones arrive.
    socks = [socket.create_connection((forged.client.host, forged.client.port), timeout=60)
             for _ in range(6)]
    try:
        for i, s in enumerate(socks):
            body = json.dumps({"command": "cat /root/kept.txt; echo %d" % i}).encode()
            s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: %d\r\n\r\n" % (sb.path("/shell"), len(body))).encode() + body)
        answers = [read_response(s, "POST") for s in socks]
    finally:
        for s in socks:
            s.close()
    for i, r in enumerate(answers):
        assert r.status == 200, r.describe()
        assert r.json()["stdout"] == "kept\n%d\n" % i, r.describe()
    log = forged.log_tail(limit=4 << 20)
    served = back.findall(log)
    assert log_count(forged, gone) == before[0] + 1, log
    assert len(served) == before[1] + 1, log
    assert int(served[-1]) >= 2, log  # more than the first call waited for it
    assert agent_pid(forged, sb) != pid
    assert sb.get()["status"] == "running"


def test_silent_agent_fails_the_call_then_recovers(quick):
    sb = quick.client.create()
    assert sb.sh("echo up") == "up\n"  # connected
    pid = agent_pid(quick, sb)
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = sb.shell_raw({"command": "echo never"}, timeout=60)
        took = time.monotonic() - t0
        check_error(r, 503, "agent_unavailable")
        assert SILENCE_MS / 1000 - 0.1 <= took < SILENCE_MS / 1000 + 3, took
        assert "sandbox=%s agent sent nothing for" % sb.id in quick.log_tail()
        # forged itself never waited: other calls go on meanwhile
        assert quick.client.health().status == 200
    finally:
        os.kill(pid, signal.SIGCONT)
    # the next call connects again to the same agent: no revive
    assert sb.sh("echo back") == "back\n"
    assert agent_pid(quick, sb) == pid
    assert "sandbox=%s agent is gone" % sb.id not in quick.log_tail()


def test_silent_agent_during_a_file_call(quick):
    sb = quick.client.create()
    sb.put_file("/root/f.txt", b"hello")
    pid = agent_pid(quick, sb)
    os.kill(pid, signal.SIGSTOP)
    try:
        check_error(sb.stat_raw("/root/f.txt"), 503, "agent_unavailable")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert sb.get_file("/root/f.txt") == b"hello"


def test_quiet_command_longer_than_the_timeout(quick):
    """The spawn is answered at once; the silence that follows waits for no reply."""
    sb = quick.client.create()
    res = sb.shell("sleep %.1f; echo done" % (SILENCE_MS * 2.5 / 1000), timeout=60)
    assert res["exitCode"] == 0 and res["stdout"] == "done\n", res


def test_paused_upload_longer_than_the_timeout(quick):
    """FILE_WRITE's reply comes at the end: while the client pauses, the agent waits for
    us, and its silence means nothing."""
    sb = quick.client.create()
    head = ("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (sb.path("/files?path=" + q("/root/paused.bin")), 2 * MiB)).encode()

    def chunks():
        yield b"a" * MiB
        time.sleep(SILENCE_MS * 2.5 / 1000)
        yield b"b" * MiB

    r, sent = stream_request(quick.client.host, quick.client.port, head, chunks(), timeout=60)
    assert r is not None and r.status == 200, r and r.describe()
    assert sb.get_file("/root/paused.bin") == b"a" * MiB + b"b" * MiB


def test_paused_download_longer_than_the_timeout(quick):
    """A download waits for no reply once open: a client that stops reading only stops
    the credit."""
    sb = quick.client.create()
    sb.sh("head -c %d /dev/urandom > /root/big.bin" % (8 * MiB))
    want = sb.get_file("/root/big.bin")
    s = socket.create_connection((quick.client.host, quick.client.port), timeout=60)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                   % sb.path("/files?path=" + q("/root/big.bin"))).encode())
        got = s.recv(64 * 1024)
        time.sleep(SILENCE_MS * 2.5 / 1000)
        while True:
            more = s.recv(1 << 20)
            if not more:
                break
            got += more
    finally:
        s.close()
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    if b"chunked" in head.lower():
        body = dechunk(body)
    assert body == want
    assert "agent sent nothing" not in quick.log_tail()


def dechunk(data):
    out = b""
    while True:
        line, _, data = data.partition(b"\r\n")
        n = int(line.split(b";")[0], 16)
        if n == 0:
            return out
        out += data[:n]
        data = data[n + 2:]
