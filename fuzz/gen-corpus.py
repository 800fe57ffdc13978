#!/usr/bin/env python3
"""Writes the committed seed corpora, fuzz/corpus/<target>/, from the descriptions below.

Seeds are small, valid (or nearly valid) inputs in each target's input format (see the
comment at the top of each fuzz/fuzz_*.c); libFuzzer mutates from there. Run it after
changing an input format: `python3 fuzz/gen-corpus.py`. Regression inputs (crashes that
were fixed) live beside the generated seeds as regress-* files and are kept.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- the agent protocol (src/proto/proto.h) ----
HELLO, REQUEST, RESPONSE, DATA, EOF, CREDIT, EVENT = 1, 2, 3, 4, 5, 6, 7
OP = dict(SPAWN=1, SIGNAL=2, RESIZE=3, FILE_READ=4, FILE_WRITE=5, STAT=6, LIST=7, MKDIR=8,
          REMOVE=9, RENAME=10, USAGE=11, PING=12, SHUTDOWN=13, PROCS_LIST=14, PROC_ADOPT=15)
TAG = dict(VERSION=1, FEATURE=2, ARGV=3, ENV=4, CWD=5, CHANNEL=6, UID=7, GID=8, STDIN=9,
           TIMEOUT_MS=10, PTY_ROWS=11, PTY_COLS=12, SIGNAL=13, PID=14, PATH=15, PATH2=16,
           MODE=17, SIZE=18, MAX_SIZE=19, MTIME_NS=20, TYPE=21, NAME=22, ENTRY=23, PARENTS=24,
           RECURSIVE=25, EXIT_CODE=26, TIMED_OUT=27, CPU_USEC=28, MAX_RSS_KB=29, PROCS=30,
           MESSAGE=31, LINK_TARGET=32, UID_OWNER=33, GID_OWNER=34, RETAIN=35, META=36, PROC=37,
           STDOUT_OFFSET=38, STDERR_OFFSET=39, STDOUT_END=40, STDERR_END=41, TIME_NS=42,
           HOSTNAME=43, PIDS_MAX=44)


def tlv(tag, value):
    if isinstance(value, int):
        value = struct.pack(">q", value)
    elif isinstance(value, str):
        value = value.encode()
    return struct.pack(">HI", TAG[tag], len(value)) + value


def frame(ftype, payload=b"", stream=0, channel=0):
    return struct.pack(">IBBHI", len(payload), ftype, stream, 0, channel) + payload


def request(req_id, op, *fields):
    return struct.pack(">IH", req_id, OP[op]) + b"".join(tlv(t, v) for t, v in fields)


def response(req_id, status, *fields):
    return struct.pack(">Ii", req_id, status) + b"".join(fields)


def stat_fields(name=None, ftype=1, size=5, link=None):
    out = tlv("NAME", name) if name else b""
    out += tlv("TYPE", ftype) + tlv("SIZE", size) + tlv("MODE", 0o644) + tlv("MTIME_NS", 10**18)
    out += tlv("UID_OWNER", 0) + tlv("GID_OWNER", 0)
    if link:
        out += tlv("LINK_TARGET", link)
    return out


def exit_event(code=None, signal=None):
    out = struct.pack(">H", 1)
    out += tlv("EXIT_CODE", code) if code is not None else tlv("SIGNAL", signal)
    return out + tlv("CPU_USEC", 1234) + tlv("MAX_RSS_KB", 2048)


HELLO_PAYLOAD = tlv("VERSION", 1) + tlv("FEATURE", "spawn") + tlv("FEATURE", "files")
# the qemu isolator's HELLO after a boot or restore: what a VM's machine must be
HOST_HELLO_PAYLOAD = (tlv("VERSION", 1) + tlv("TIME_NS", 1795354790336435673) + tlv("HOSTNAME", "zn5zpswe4c")
                      + tlv("PIDS_MAX", 64))

REQUESTS = {
    "spawn": request(1, "SPAWN", ("ARGV", "/bin/sh"), ("ARGV", "-c"), ("ARGV", "echo hi"),
                     ("ENV", "PATH=/bin"), ("CWD", "/root"), ("CHANNEL", 1), ("STDIN", 1),
                     ("TIMEOUT_MS", 5000), ("UID", 0), ("GID", 0)),
    "signal": request(2, "SIGNAL", ("CHANNEL", 1), ("SIGNAL", 15)),
    "resize": request(3, "RESIZE", ("CHANNEL", 1), ("PTY_ROWS", 24), ("PTY_COLS", 80)),
    "read": request(4, "FILE_READ", ("PATH", "/etc/hostname"), ("CHANNEL", 2), ("MAX_SIZE", 4096)),
    "write": request(5, "FILE_WRITE", ("PATH", "/tmp/x"), ("CHANNEL", 3), ("MODE", 0o600)),
    "stat": request(6, "STAT", ("PATH", "/tmp")),
    "list": request(7, "LIST", ("PATH", "/")),
    "mkdir": request(8, "MKDIR", ("PATH", "/tmp/a/b"), ("PARENTS", 1), ("MODE", 0o755)),
    "remove": request(9, "REMOVE", ("PATH", "/tmp/a"), ("RECURSIVE", 1)),
    "rename": request(10, "RENAME", ("PATH", "/tmp/a"), ("PATH2", "/tmp/b")),
    "usage": request(11, "USAGE"),
    "ping": request(12, "PING"),
    "unknown-op": request(13, "SHUTDOWN") + tlv("MESSAGE", "ignored"),
    "spawn-retained": request(14, "SPAWN", ("ARGV", "sleep"), ("ARGV", "9"), ("CHANNEL", 4), ("RETAIN", 1),
                              ("META", '{"argv":["sleep","9"]}')),
    "procs-list": request(15, "PROCS_LIST"),
    "adopt": request(16, "PROC_ADOPT", ("PID", 42), ("CHANNEL", 5), ("STDOUT_OFFSET", 10),
                     ("STDERR_OFFSET", 0)),
}


def proc_entry(pid, code=None, signal=None):
    out = tlv("PID", pid) + tlv("META", "{}") + tlv("STDIN", 1)
    out += tlv("STDOUT_OFFSET", 0) + tlv("STDOUT_END", 7) + tlv("STDERR_OFFSET", 2) + tlv("STDERR_END", 2)
    if code is not None or signal is not None:
        out += exit_event(code, signal)[2:] + tlv("TIMED_OUT", 0)
    return tlv("PROC", out)


def agent_seeds():
    seeds = {}
    for name, payload in REQUESTS.items():
        seeds["raw-" + name] = b"\x00" + payload
    seeds["raw-header"] = b"\x00" + frame(REQUEST, REQUESTS["stat"])
    session = frame(HELLO, HELLO_PAYLOAD)
    for name in ("spawn", "stat", "list", "write", "ping"):
        session += frame(REQUEST, REQUESTS[name])
    session += frame(DATA, b"hello", stream=0, channel=3) + frame(EOF, stream=0, channel=3)
    session += frame(CREDIT, struct.pack(">I", 65536), stream=1, channel=1)
    seeds["conn-session"] = b"\x01" + session
    seeds["conn-pieces"] = b"\x03" + session  # written 16 bytes at a time
    seeds["conn-bad-header"] = b"\x01" + frame(HELLO, HELLO_PAYLOAD) + b"\x00" * 4 + b"\x09" + b"\x00" * 7
    seeds["conn-host-hello"] = b"\x01" + frame(HELLO, HELLO_PAYLOAD) + frame(HELLO, HOST_HELLO_PAYLOAD)
    return seeds


def host_seeds():
    seeds = {
        "raw-stat": b"\x00" + response(2, 0, stat_fields(link="/target")),
        "raw-list": b"\x00" + response(3, 0, tlv("ENTRY", stat_fields("a", 1)),
                                        tlv("ENTRY", stat_fields("b", 2)), tlv("ENTRY", stat_fields("c", 3))),
        "raw-error": b"\x00" + response(1, -2, tlv("MESSAGE", "no such file")),
        "raw-usage": b"\x00" + response(1, 0, tlv("CPU_USEC", 1), tlv("MAX_RSS_KB", 2), tlv("PROCS", 3)),
        "raw-spawned": b"\x00" + response(1, 0, tlv("PID", 42)),
        "raw-procs": b"\x00" + response(1, 0, proc_entry(42), proc_entry(43, code=3), proc_entry(44, signal=9)),
        "raw-adopted": b"\x00" + response(1, 0, tlv("STDOUT_OFFSET", 1), tlv("STDERR_OFFSET", 2),
                                           tlv("STDOUT_END", 3), tlv("STDERR_END", 4)),
        "raw-exit": b"\x01" + exit_event(code=0),
        "raw-exit-signal": b"\x01" + exit_event(signal=9),
        "raw-hello": b"\x02" + HELLO_PAYLOAD,
        "raw-hello-host": b"\x02" + HOST_HELLO_PAYLOAD,
    }
    session = frame(HELLO, HELLO_PAYLOAD)
    session += frame(RESPONSE, response(1, 0))
    session += frame(DATA, b"out", stream=1, channel=1) + frame(DATA, b"err", stream=2, channel=1)
    session += frame(EOF, stream=1, channel=1) + frame(CREDIT, struct.pack(">I", 4096), channel=2)
    session += frame(EVENT, exit_event(code=3), channel=1)
    session += frame(RESPONSE, response(2, 0, stat_fields()))
    session += frame(RESPONSE, response(3, 0, tlv("ENTRY", stat_fields("x", 2))))
    seeds["conn-session"] = b"\x03" + session
    seeds["conn-pieces"] = b"\x07" + session  # written 16 bytes at a time
    seeds["conn-close-in-callback"] = b"\x03" + frame(HELLO, HELLO_PAYLOAD) + frame(DATA, b"X!", stream=1, channel=2)
    seeds["conn-bad-version"] = b"\x03" + frame(HELLO, tlv("VERSION", 2))
    return seeds


# ---- HTTP ----
def http_seeds():
    reqs = {
        "get-query": b"GET /v1/sandboxes?status=running&metadata.team=a%20b&x=%00&+k=v+w HTTP/1.1\r\n"
                     b"Host: localhost\r\nUser-Agent: fuzz\r\n\r\n",
        "post-body": b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 13\r\n\r\n{\"image\":\"h\"}",
        "chunked": b"PUT /v1/sandboxes/abc/files?path=/tmp/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
        "pipelined": b"GET /health HTTP/1.1\r\n\r\nPOST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                     b"DELETE /b#frag HTTP/1.1\r\nConnection: close\r\n\r\n",
        "expect": b"POST /upload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
        "http10": b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /old2 HTTP/1.0\r\n\r\n",
        "upgrade": b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nrest",
        "bad-cl-te": b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
        "bad-line": b"GET\x01/ HTTP/1.1\r\n\r\n",
        "big-header": b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 700 + b"\r\n\r\n",
        "long-url": b"GET /" + b"u" * 200 + b" HTTP/1.1\r\n\r\n",
        "big-body": b"POST /b HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + b"x" * 100,
        "empty-value": b"GET / HTTP/1.1\r\nX-Empty:\r\nHost: h\r\n\r\n",
    }
    seeds = {}
    # byte 0: handler behaviour bits (fuzz_http.c), byte 1: piece size / 8
    for flags, piece in ((0x00, 0), (0x01, 0), (0x02, 1), (0x03, 0), (0x0d, 0), (0x1a, 0),
                         (0x25, 0), (0x46, 2), (0x8e, 0), (0xff, 1)):
        for name, req in reqs.items():
            seeds["%s-%02x-%d" % (name, flags, piece)] = bytes([flags, piece]) + req
    return seeds


def api_seeds():
    bodies = {
        0: [{"image": "host", "runtime": "python", "isolator": "auto",
             "limits": {"cpus": 0.5, "memory_mb": 64, "pids": 32, "timeout_ms": 1000},
             "env": {"A": "b"}, "metadata": {"team": "x"}, "cwd": "/tmp", "name": "n", "network": False},
            {"isolator": "ns", "limits": {"disk_mb": 1}}, {"limits": {"cpus": 1e308}}, {}],
        1: [{"command": "echo hi", "cwd": "sub", "env": {"X": "y"}, "timeout_ms": 1000, "stdin": "in"},
            {"command": "x", "env": {"A=B": "c"}}, {"command": 5}],
        2: [{"code": "print(1)", "runtime": "python3", "stdin": "x"},
            {"code": "console.log(1)", "language": "javascript", "cwd": "/tmp"},
            {"code": "echo", "runtime": "shell"}, {"code": "x", "runtime": "cobol"}],
        3: [{"path": "a/b.txt", "data": "aGVsbG8="}, {"path": "/x", "data": "!!"}],
        4: [{"path": "/tmp/a/b", "parents": True}, {"path": "rel"}],
        5: [{"image": "host"}],
        6: [{"command": "true"}],
    }
    seeds = {}
    for route, items in bodies.items():
        for i, body in enumerate(items):
            seeds["route%d-%d" % (route, i)] = bytes([route]) + json.dumps(body).encode()
    raw = [
        b"GET /health\n",
        b"GET /v1/sandboxes?status=running&metadata.team=fuzz\n",
        b"GET /v1/sandboxes/fuzzbox\n",
        b"GET /v1/sandboxes/stopped\n",
        b"GET /v1/sandbox/fuzzbox/files/stat?path=%2Fetc\n",
        b"GET /v1/sandboxes/fuzzbox/files/list?path=sub\n",
        b"GET /v1/sandboxes/fuzzbox/download?path=/etc/passwd\n",
        b"GET /v1/sandboxes/fuzzbox/files?path=%00\n",
        b"DELETE /v1/sandboxes/fuzzbox/files?path=/tmp/x&recursive=true\n",
        b"PUT /v1/sandboxes/fuzzbox/files?path=/tmp/up\nfile contents",
        b"PATCH /v1/sandboxes/fuzzbox\n",
        b"POST /v1/sandboxes/nosuch/shell\n{\"command\":\"x\"}",
        b"POST /v1/sandboxes/fuzzbox/shell/\nnot json",
        b"POST /v1/sandboxes/fuzzbox/execute\n[1,2]",
    ]
    for i, r in enumerate(raw):
        seeds["raw-%d" % i] = bytes([7]) + r
    return seeds


def path_seeds():
    paths = [b"/etc/passwd", b"relative/file", b"../../etc/shadow", b"/proc/self/root/etc",
             b"/dev/fd/0", b"/", b"//a//b//", b"/tmp/..", b"a\x00b", b"/\xff\xfe", b".", b"..",
             b"/" + b"p" * 4095, b"q" * 4090]
    return {"path-%d" % i: bytes([i % 6]) + p for i, p in enumerate(paths)}


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if not name.startswith("regress-"):
            os.unlink(os.path.join(d, name))
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def main():
    write("fuzz_http", http_seeds())
    write("fuzz_api_json", api_seeds())
    write("fuzz_proto_agent", agent_seeds())
    write("fuzz_proto_host", host_seeds())
    write("fuzz_path", path_seeds())


if __name__ == "__main__":
    main()
