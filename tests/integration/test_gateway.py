"""A hostile client cannot hurt forged (SECURITY.md "Gateway"; docs/security.md "Gateway
and faults"; limits in docs/http.md).

Every test here does one hostile thing and checks four outcomes: the hostile client gets
a 4xx or a closed connection; forged's memory (VmRSS, and its peak VmHWM, from
/proc/PID/status) stays under a ceiling set against a baseline measured in the same
test; /health still answers; and another client, making normal requests at the same
time, gets its answers promptly.

forged's settings (src/daemon/main.c): request head 64 KiB, JSON bodies 64 MiB, 1024
connections, 60 s idle timeout. Tests that wait for the idle timeout start their own
forged with --idle-timeout-ms so they take seconds, not minutes.
"""

import http.client
import os
import select
import socket
import threading
import time

import pytest

from forge_client import (MiB, check_error, host_pids_matching, q, raw_exchange,
                          read_response, stream_request, wait_until)

KiB = 1024
PROMPT = 2.0            # seconds a bystander's request may take while forged is attacked
IDLE_MS = 1500          # the idle timeout of the forged started with --idle-timeout-ms
SANITIZED = "san" in os.environ.get("FORGE_BUILD", "")
# ASan keeps freed memory in quarantine (256 MiB by default) and adds shadow memory, so
# under ASan RSS only shows memory that is never bounded; the release build is where
# these ceilings bite.
QUARANTINE = 256 * MiB if SANITIZED else 0
SLACK = QUARANTINE + (48 if SANITIZED else 8) * MiB
HEAD_LIMIT = 64 * KiB
BODY_LIMIT = 64 * MiB
MAX_CONNECTIONS = 1024


# --- measuring forged -------------------------------------------------------------------


def _status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * KiB
    raise AssertionError("no %s in /proc/%d/status" % (key, pid))


class Memory:
    """forged's RSS against a baseline taken at construction; the peak is reset then
    too (writing 5 to clear_refs resets VmHWM), so `peak()` is this test's peak."""

    def __init__(self, f):
        self.pid = f.proc.pid
        with open("/proc/%d/clear_refs" % self.pid, "w") as cr:
            cr.write("5")
        self.base = _status_kib(self.pid, "VmRSS")

    def rss(self):
        return _status_kib(self.pid, "VmRSS")

    def peak(self):
        return _status_kib(self.pid, "VmHWM")

    def check(self, ceiling, what):
        """Peak and current RSS both stay under base + ceiling (+ SLACK)."""
        limit = self.base + ceiling + SLACK
        peak, now = self.peak(), self.rss()
        assert peak <= limit, "%s: forged's peak RSS %d KiB > %d KiB (baseline %d KiB)" % (
            what, peak // KiB, limit // KiB, self.base // KiB)
        assert now <= limit, "%s: forged's RSS %d KiB > %d KiB" % (what, now // KiB, limit // KiB)


class Bystander:
    """Another client that keeps asking /health (and, given one, runs a command in a
    sandbox) while the hostile one acts; every answer must come, and come promptly."""

    def __init__(self, client, sandbox=None):
        self.client, self.sandbox = client, sandbox
        self.latencies, self.errors = [], []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        n = 0
        while not self.stopping.is_set():
            t0 = time.monotonic()
            try:
                if self.sandbox is not None and n % 4 == 3:
                    res = self.sandbox.shell("echo bystander", timeout=30)
                    if res["stdout"] != "bystander\n":
                        self.errors.append("shell: %r" % res)
                else:
                    r = self.client.health(timeout=30)
                    if r.status != 200:
                        self.errors.append(r.describe())
            except (OSError, AssertionError) as e:
                self.errors.append(repr(e))
            self.latencies.append(time.monotonic() - t0)
            n += 1
            self.stopping.wait(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(60)
        if exc[0] is None:
            self.check()

    def check(self):
        assert self.errors == [], self.errors[:5]
        assert self.latencies, "the bystander made no request"
        assert max(self.latencies) < PROMPT, "a bystander waited %.2fs" % max(self.latencies)


def healthy(f):
    t0 = time.monotonic()
    r = f.client.health(timeout=10)
    assert r.status == 200 and r.json()["status"] == "ok", r.describe()
    assert time.monotonic() - t0 < PROMPT
    assert f.alive()


def closed_within(sock, seconds):
    """Wait up to `seconds` for the peer to close `sock`; returns the bytes it sent
    before closing, or None if it is still open."""
    deadline = time.monotonic() + seconds
    got = b""
    poller = select.poll()  # select() cannot watch fds past 1023
    poller.register(sock, select.POLLIN)
    while time.monotonic() < deadline or seconds == 0:
        if not poller.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            break
        try:
            d = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return got
        if not d:
            return got
        got += d
    return None


def shell_head(sb, length, extra=""):
    return ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
            "Content-Length: %d\r\n\r\n" % (sb.path("/shell"), extra, length)).encode()


@pytest.fixture(scope="module")
def bystander_sb(forged):
    sb = forged.client.create()
    yield sb
    forged.client.delete(sb.id)


# --- malformed request lines and headers ----------------------------------------------

# Each must be refused with a 400 (or the connection closed) and the connection must not
# carry on: the well-formed request sent right behind it in the same packet is never
# answered (no request smuggling past a parse error).
MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET health HTTP/1.1\r\n\r\n",
    b"GET /health HTTP/1.1 extra\r\n\r\n",
    b"GET /health\x00 HTTP/1.1\r\n\r\n",
    b"GET /h\x01ealth HTTP/1.1\r\n\r\n",
    b"G\xffT /health HTTP/1.1\r\n\r\n",
    b"A" * 10000 + b" /health HTTP/1.1\r\n\r\n",
    b"\x00\x00\x00\x00\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)),  # TLS ClientHello
    b"GET /health HTTP/1.1\rHost: x\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost x\r\n\r\n",
    b"GET /health HTTP/1.1\r\nX: a\x00b\r\n\r\n",
    b"GET /health HTTP/1.1\r\n\x7f: x\r\n\r\n",
    b"POST /v1/sandboxes HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"POST /v1/sandboxes HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    b"POST /v1/sandboxes HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /v1/sandboxes HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
    b"POST /v1/sandboxes HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n",
    b"POST /v1/sandboxes HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n",
]
FOLLOW = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def test_malformed_requests(forged, bystander_sb):
    f = forged
    mem = Memory(f)
    before = f.client.list_ids()
    with Bystander(f.client, bystander_sb):
        for data in MALFORMED:
            with socket.create_connection((f.client.host, f.client.port), timeout=10) as s:
                s.sendall(data + FOLLOW)
                got = closed_within(s, 5)
            assert got is not None, "connection left open after %r" % data[:60]
            if got:
                assert got.count(b"HTTP/1.1 ") == 1, "answered past a parse error: %r -> %r" % (
                    data[:60], got[:300])
                status = int(got.split(b" ", 2)[1])
                assert 400 <= status < 500, (data[:60], got[:300])
    healthy(f)
    assert f.client.list_ids() == before  # nothing was created by a half-parsed request
    mem.check(1 * MiB, "malformed requests")


# --- oversized heads ------------------------------------------------------------------


def test_oversized_headers(forged, bystander_sb):
    f = forged
    mem = Memory(f)
    with Bystander(f.client, bystander_sb):
        one_big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (HEAD_LIMIT + 1) + b"\r\n\r\n"
        many = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n"
        many_medium = b"GET /health HTTP/1.1\r\n" + b"".join(
            b"X-M%d: %s\r\n" % (i, b"m" * 1000) for i in range(80)) + b"\r\n"
        for data in (one_big, many, many_medium):
            r = raw_exchange(f.client.host, f.client.port, data)
            assert r is not None, "closed without a 431"
            check_error(r, 431, "header_too_large")

        # A head that never ends: 431 once it passes the limit, long before the 32 MiB
        # the client would send; forged holds no more than the limit.
        def endless():
            for i in range(32 * 1024):
                yield b"X-Endless-%d: %s\r\n" % (i, b"e" * 1000)
        r, sent = stream_request(f.client.host, f.client.port, b"GET /health HTTP/1.1\r\n",
                                 endless(), timeout=30, method="GET")
        assert r is not None, "closed without a 431"
        check_error(r, 431, "header_too_large")
        assert sent < 32 * MiB
    healthy(f)
    mem.check(2 * MiB, "oversized headers")


# --- huge bodies on JSON routes -------------------------------------------------------


def test_huge_content_length(forged, bystander_sb):
    """Refused from the head alone: nothing is read or allocated for it."""
    f = forged
    sb = bystander_sb
    mem = Memory(f)
    with Bystander(f.client, sb):
        for length in (BODY_LIMIT + 1, 10 ** 15, 2 ** 63 - 1):
            for path in (sb.path("/shell"), sb.path("/upload"), "/v1/sandboxes"):
                head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\n\r\n" % (path, length)).encode()
                t0 = time.monotonic()
                r = raw_exchange(f.client.host, f.client.port, head + b'{"command": "',
                                 method="POST")
                assert r is not None, "closed without a 413"
                check_error(r, 413, "payload_too_large")
                assert time.monotonic() - t0 < PROMPT
    healthy(f)
    mem.check(1 * MiB, "huge Content-Length")


def test_content_length_beyond_int64(forged, bystander_sb):
    """http-parser accepts lengths up to 2^64-1; forged's are signed, so those past
    2^63-1 are malformed: 400 at once, not a connection left hanging."""
    f = forged
    with Bystander(f.client, bystander_sb):
        for length in (2 ** 63, 2 ** 64 - 1):
            head = ("POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{}"
                    % length).encode()
            t0 = time.monotonic()
            r = raw_exchange(f.client.host, f.client.port, head, method="POST")
            assert r is not None, "closed without an answer"
            check_error(r, 400, "bad_request")
            assert time.monotonic() - t0 < PROMPT
    healthy(f)


def test_buffered_bodies_share_one_budget(forged, bystander_sb):
    """Each body may be up to 64 MiB, but all buffered bodies together stay within the
    server's budget (256 MiB): past it, a new body is refused with 503 at once instead of
    letting many clients add up to gigabytes."""
    f = forged
    sb = bystander_sb
    socks, answers = [], []
    with Bystander(f.client, sb):
        try:
            for _ in range(6):
                s = socket.create_connection((f.client.host, f.client.port), timeout=10)
                s.sendall(shell_head(sb, 60 * MiB) + b'{"command": "')
                socks.append(s)
            time.sleep(0.5)
            for s in socks:
                s.settimeout(0.2)
                try:
                    answers.append(read_response(s, "POST"))
                except (socket.timeout, OSError, http.client.HTTPException):
                    answers.append(None)
        finally:
            for s in socks:
                s.close()
    refused = [r for r in answers if r is not None]
    assert refused, "no body was refused although 6 x 60 MiB exceed the budget"
    for r in refused:
        check_error(r, 503, "at_capacity")
    assert len(refused) <= 2, "only what exceeds the budget is refused: %d of 6" % len(refused)
    healthy(f)


def test_declared_bodies_cost_only_what_arrives(forged, bystander_sb):
    """Fifty clients each announce a body just under the limit and send 64 KiB of it:
    forged must not reserve 50 x 64 MiB of memory for them. (Ten under ASan, which
    writes shadow memory for every big block it frees and so stalls the loop.)"""
    f = forged
    sb = bystander_sb
    mem = Memory(f)
    socks = []
    n = 10 if SANITIZED else 50
    with Bystander(f.client, sb):
        try:
            for _ in range(n):
                s = socket.create_connection((f.client.host, f.client.port), timeout=10)
                s.sendall(shell_head(sb, BODY_LIMIT) + b'{"command": "' + b"x" * 64 * KiB)
                socks.append(s)
            time.sleep(0.5)
            mem.check(n * 64 * KiB * 2, "%d announced 64 MiB bodies" % n)
        finally:
            for s in socks:
                s.close()
    healthy(f)


def test_huge_chunked_body(forged, bystander_sb):
    """Chunked bodies have no length up front: forged must stop at the limit with a 413,
    and three such clients in a row must not add up (the buffer is freed each time)."""
    f = forged
    sb = bystander_sb
    mem = Memory(f)
    piece = b"x" * MiB
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    head = shell_head(sb, 0, "Transfer-Encoding: chunked\r\n").replace(
        b"Content-Length: 0\r\n", b"")

    def chunks():
        start = b'{"command": "'
        yield b"%x\r\n%s\r\n" % (len(start), start)
        for _ in range(4 * BODY_LIMIT // MiB):  # up to four times the limit
            yield chunk
    after_first = None
    with Bystander(f.client, sb):
        for _ in range(3):
            r, sent = stream_request(f.client.host, f.client.port, head, chunks(),
                                     timeout=60, method="POST")
            assert r is not None, "closed without a 413"
            check_error(r, 413, "payload_too_large")
            assert sent < 4 * BODY_LIMIT, "forged read the whole oversized body"
            after_first = after_first or mem.rss()
    healthy(f)
    # at most the limit was buffered (plus the growth of the buffer) ...
    mem.check(2 * BODY_LIMIT, "huge chunked bodies")
    # ... and it was given back or reused, not kept once per client
    assert mem.rss() <= after_first + 8 * MiB + QUARANTINE, (mem.rss(), after_first)


# --- many connections -----------------------------------------------------------------


def _connect_many(f, n):
    socks = []
    for _ in range(n):
        socks.append(socket.create_connection((f.client.host, f.client.port), timeout=10))
    return socks


def test_many_connections(forged_factory):
    """Past max_connections new clients get a prompt 503 (or a close), never a hang; the
    connections cost bounded memory; once they go, service is back at once."""
    f = forged_factory()
    mem = Memory(f)
    socks = []
    try:
        socks = _connect_many(f, MAX_CONNECTIONS)
        # half of them start a request and stop in the middle of the head
        for s in socks[::2]:
            s.sendall(b"GET /health HTTP/1.1\r\nX-Wait: ")
        # wait until forged has accepted them all: then the next one is turned away
        def turned_away():
            try:
                r = raw_exchange(f.client.host, f.client.port,
                                 b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", timeout=PROMPT)
            except OSError:
                return True  # closed without a word: also allowed past the 503 budget
            return r is None or r.status == 503
        assert wait_until(turned_away, timeout=10), "connection %d was served" % (
            MAX_CONNECTIONS + 1)
        for _ in range(3):
            t0 = time.monotonic()
            r = raw_exchange(f.client.host, f.client.port,
                             b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", timeout=PROMPT)
            assert time.monotonic() - t0 < PROMPT
            if r is not None:
                check_error(r, 503, "at_capacity")
        # 200 more at once: each is answered 503 or closed, promptly
        extra = _connect_many(f, 200)
        for s in extra:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        for s in extra:
            got = closed_within(s, PROMPT * 2)
            assert got is not None, "an extra connection was neither answered nor closed"
            assert got == b"" or got.startswith(b"HTTP/1.1 503 "), got[:200]
            s.close()
        # about 35 KiB per served connection (docs/http.md), nothing more
        mem.check(MAX_CONNECTIONS * 40 * KiB, "%d connections" % MAX_CONNECTIONS)
    finally:
        for s in socks:
            s.close()
    assert wait_until(lambda: f.client.health(timeout=PROMPT).status == 200, timeout=5)
    healthy(f)
    sb = f.client.create()
    assert sb.sh("echo served") == "served\n"


# --- slowloris and idle clients (need --idle-timeout-ms) --------------------------------


@pytest.fixture
def quick_idle(forged_factory):
    """A forged whose idle timeout is IDLE_MS instead of 60 s."""
    return forged_factory(["--idle-timeout-ms", str(IDLE_MS)])


def test_slowloris(quick_idle):
    """Twenty clients send a head one byte per 100 ms: trickling does not extend the
    head deadline, each is closed by the idle timeout, others are served meanwhile."""
    f = quick_idle
    sb = f.client.create()
    mem = Memory(f)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 1000
    socks = [socket.create_connection((f.client.host, f.client.port), timeout=10)
             for _ in range(20)]
    opened = time.monotonic()
    closed_at = {}
    with Bystander(f.client, sb):
        for i in range(len(head)):
            for k, s in enumerate(socks):
                if k in closed_at:
                    continue
                try:
                    s.send(head[i:i + 1])
                except OSError:
                    closed_at[k] = time.monotonic()
                    continue
                if closed_within(s, 0) is not None:
                    closed_at[k] = time.monotonic()
            if len(closed_at) == len(socks) or time.monotonic() - opened > IDLE_MS / 1000 * 4:
                break
            time.sleep(0.1)
    for s in socks:
        s.close()
    assert len(closed_at) == len(socks), "%d slowloris clients still connected after %.1fs" % (
        len(socks) - len(closed_at), time.monotonic() - opened)
    worst = max(closed_at.values()) - opened
    assert worst < IDLE_MS / 1000 + 1.5, "closed only after %.1fs" % worst
    healthy(f)
    mem.check(1 * MiB, "slowloris")


def test_body_slower_than_idle_timeout(quick_idle):
    """A body that stalls longer than the idle timeout: the connection is dropped, the
    command never runs, a streamed upload leaves the old file and no temporary."""
    f = quick_idle
    sb = f.client.create()
    sb.put_file("/root/slow.txt", b"old")
    mem = Memory(f)
    body = b'{"command": "touch /root/ran"}'
    with Bystander(f.client, sb):
        shell = socket.create_connection((f.client.host, f.client.port), timeout=10)
        shell.sendall(shell_head(sb, len(body)) + body[:10])
        put = socket.create_connection((f.client.host, f.client.port), timeout=10)
        put.sendall(("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (
            sb.path("/files?path=" + q("/root/slow.txt")), 1000)).encode() + b"n" * 500)
        t0 = time.monotonic()
        for s in (shell, put):
            got = closed_within(s, IDLE_MS / 1000 + 3)
            assert got is not None, "a stalled body kept its connection"
            assert got == b"" or 400 <= int(got.split(b" ", 2)[1]) < 500, got[:200]
        assert time.monotonic() - t0 < IDLE_MS / 1000 + 3
        # the rest of the bodies, too late
        for s, rest in ((shell, body[10:]), (put, b"n" * 500)):
            try:
                s.sendall(rest)
            except OSError:
                pass
            s.close()
    time.sleep(0.3)
    assert sb.shell("test -e /root/ran")["exitCode"] == 1, "the stalled command ran"
    assert sb.get_file("/root/slow.txt") == b"old"
    assert sb.sh("ls -A /root | grep -c forge || true") == "0\n", "temporary upload left"
    healthy(f)
    mem.check(1 * MiB, "stalled bodies")


def test_stalled_download_reader_is_dropped(quick_idle):
    """A client that stops reading a download is dropped after the idle timeout and the
    transfer is cancelled in the sandbox: the next download works."""
    f = quick_idle
    sb = f.client.create()
    sb.sh("head -c 32M /dev/zero > /root/big")
    mem = Memory(f)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect((f.client.host, f.client.port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % sb.path("/files?path=%2Froot%2Fbig"))
              .encode())
    with Bystander(f.client, sb):
        time.sleep(IDLE_MS / 1000 + 2)  # reads nothing at all
    s.settimeout(5)
    total = 0
    try:
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            total += len(d)
    except OSError:
        pass
    s.close()
    assert total < 32 * MiB, "the stalled reader was not dropped"
    assert len(sb.get_file("/root/big")) == 32 * MiB
    healthy(f)
    mem.check(4 * MiB, "stalled download")


# --- clients that vanish or read slowly -----------------------------------------------


def test_client_vanishes_mid_command(forged, bystander_sb):
    """docs/api.md: a client that disconnects before the result kills the command's whole
    process tree, background children included."""
    f = forged
    sb = f.client.create()
    mem = Memory(f)
    body = (b'{"command": "sleep 6464.5 & sleep 6465.5; echo late > /root/vanish"}')
    with Bystander(f.client, bystander_sb):
        with socket.create_connection((f.client.host, f.client.port), timeout=10) as s:
            s.sendall(shell_head(sb, len(body)) + body)
            assert wait_until(lambda: host_pids_matching("sleep 6465.5"), timeout=10)
            assert wait_until(lambda: host_pids_matching("sleep 6464.5"))  # fork to exec takes a moment
        assert wait_until(lambda: not host_pids_matching("sleep 6465.5")
                          and not host_pids_matching("sleep 6464.5"), timeout=5), \
            "the command's tree outlived its client"
    time.sleep(0.3)
    assert sb.shell("test -e /root/vanish")["exitCode"] == 1
    assert sb.sh("echo still here") == "still here\n"
    f.client.delete(sb.id)
    healthy(f)
    mem.check(1 * MiB, "vanished client")


def test_slow_download_reader(forged, bystander_sb):
    """A client reads a 64 MiB download slowly while the sandbox could send it at full
    speed: forged holds at most about the high-water mark (1 MiB) for it, other sandboxes
    are served meanwhile, and the bytes that finally arrive are all there."""
    f = forged
    sb = f.client.create()
    sb.sh("head -c 64M /dev/zero | tr '\\0' 'z' > /root/big")
    mem = Memory(f)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * KiB)
    s.settimeout(30)
    s.connect((f.client.host, f.client.port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % sb.path("/download?path=%2Froot%2Fbig"))
              .encode())
    resp = http.client.HTTPResponse(s, method="GET")
    resp.begin()
    assert resp.status == 200
    got = 0
    with Bystander(f.client, bystander_sb):
        for _ in range(30):  # 3 s at 64 KiB per 100 ms
            piece = resp.read(64 * KiB)
            assert piece == b"z" * len(piece)
            got += len(piece)
            time.sleep(0.1)
        mem.check(4 * MiB, "slow download reader")
    while True:  # then the rest at full speed: every byte is there
        piece = resp.read(MiB)
        if not piece:
            break
        assert piece.count(b"z") == len(piece)
        got += len(piece)
    s.close()
    assert got == 64 * MiB, "download cut short: %d bytes" % got
    f.client.delete(sb.id)
    healthy(f)
    mem.check(4 * MiB, "slow download reader (end)")


def test_slow_readers_of_command_output(forged, bystander_sb):
    """Four clients run commands that print far more than is captured and then read the
    result slowly: the commands are not held up, forged's memory stays bounded."""
    f = forged
    sb = f.client.create()
    mem = Memory(f)
    body = b'{"command": "yes o | head -c 8M; yes e | head -c 4M >&2"}'
    socks = []
    with Bystander(f.client, bystander_sb):
        for _ in range(4):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * KiB)
            s.settimeout(60)
            s.connect((f.client.host, f.client.port))
            s.sendall(shell_head(sb, len(body)) + body)
            socks.append(s)
        # the commands run to the end although nobody reads their answers yet
        time.sleep(0.5)
        assert wait_until(lambda: not host_pids_matching("head -c 8M")
                          and not host_pids_matching("yes "), timeout=20)
        mem.check(4 * 3 * MiB, "slow readers of command output")
    for s in socks:
        r = read_response(s, "POST")
        s.close()
        assert r.status == 200, r.describe()
        res = r.json()
        assert res["truncated"] is True and res["exitCode"] == 0, res["exitCode"]
        assert (len(res["stdout"]), len(res["stderr"])) == (MiB, MiB)
        assert set(res["stdout"]) == {"o", "\n"} and set(res["stderr"]) == {"e", "\n"}
    f.client.delete(sb.id)
    healthy(f)
    mem.check(4 * 3 * MiB, "slow readers of command output (end)")


def test_slow_reader_of_process_output(forged, bystander_sb):
    """A client follows a process that prints 64 MiB as fast as it can, and reads the
    SSE stream slowly: forged keeps at most the rings (1 MiB per stream) and a bounded
    queue for that reader, the process is not held up, other sandboxes are served, and
    the stream still ends with `exit` (docs/api.md: a slow reader gets `dropped`)."""
    f = forged
    sb = f.client.create()
    mem = Memory(f)
    r = sb.req("POST", "/processes", {"command": "sleep 0.5; yes 0123456789abcdef | head -c 64M"})
    assert r.status == 201, r.describe()
    pid = r.json()["pid"]
    s = socket.socket()
    # a small window, but not so small that the final drain crawls on delayed ACKs
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KiB)
    s.settimeout(60)
    s.connect((f.client.host, f.client.port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % sb.path(
        "/processes/%d/output?follow=1" % pid)).encode())
    resp = http.client.HTTPResponse(s, method="GET")
    resp.begin()
    assert resp.status == 200 and "text/event-stream" in resp.getheader("content-type", "")
    stream = bytearray()
    with Bystander(f.client, bystander_sb):
        for _ in range(30):  # 3 s at 4 KiB per 100 ms
            stream += resp.read(4 * KiB)
            time.sleep(0.1)
        mem.check(4 * MiB, "slow SSE reader")
        # the process ran to its end meanwhile: the reader does not hold it up
        assert wait_until(lambda: sb.req("GET", "/processes/%d" % pid).json()["status"]
                          == "exited", timeout=30)
    while b"event: exit" not in stream[-64 * KiB:]:  # then at full speed
        piece = resp.read1(MiB)
        if not piece:
            break
        stream += piece
    s.close()
    assert b"event: exit" in stream[-64 * KiB:], stream[-500:]
    assert b"event: dropped" in stream, "a reader 60 MiB behind was not told it missed bytes"
    f.client.delete(sb.id)
    healthy(f)
    mem.check(4 * MiB, "slow SSE reader (end)")
