"""Bad input of every kind gets the documented error and changes nothing (docs/api.md
"Errors"; SECURITY.md "Gateway")."""

import socket
import threading
import time

import pytest

from forge_client import MiB, check_error, stable_list, stream_request


@pytest.fixture(autouse=True)
def unchanged(client, sandbox):
    """Every test here must leave the sandbox list exactly as it found it."""
    before = stable_list(client)
    yield
    assert client.health().status == 200
    assert stable_list(client) == before


# --- JSON bodies -------------------------------------------------------------------

MALFORMED = [b"{", b"{\"command\": }", b"not json", b"{'command': 'ls'}",
             b"{\"command\": \"ls\"} trailing", b"\xff\xfe{}", b"{\"a\":1,}"]
NOT_OBJECTS = [b"[]", b"[{\"command\": \"ls\"}]", b"\"ls\"", b"42", b"null", b"true"]


@pytest.mark.parametrize("body", MALFORMED + NOT_OBJECTS)
def test_invalid_json(client, sandbox, body):
    h = {"Content-Type": "application/json"}
    check_error(client.request("POST", "/v1/sandboxes", body, h), 400, "invalid_json")
    check_error(sandbox.req("POST", "/shell", body, h), 400, "invalid_json")
    check_error(sandbox.req("POST", "/execute", body, h), 400, "invalid_json")
    check_error(sandbox.req("POST", "/upload", body, h), 400, "invalid_json")
    check_error(sandbox.req("POST", "/files/mkdir", body, h), 400, "invalid_json")


def test_empty_body_where_one_is_required(sandbox):
    check_error(sandbox.req("POST", "/shell", b"", {"Content-Type": "application/json"}),
                400, "invalid_json")


CREATE_BAD = [
    {"bogus": 1},
    {"limits": {"memroy_mb": 64}},
    {"limits": {"memory_mb": "x"}},
    {"limits": {"memory_mb": 15}},
    {"limits": {"pids": 7}},
    {"limits": {"cpus": 0}},
    {"limits": {"cpus": -1}},
    {"limits": {"cpus": "1"}},
    {"limits": {"timeout_ms": 0}},
    {"limits": {"timeout_ms": True}},
    {"limits": "big"},
    {"env": {"A": 1}},
    {"env": ["A=1"]},
    {"env": {"A": None}},
    {"metadata": {"k": 1}},
    {"metadata": "x"},
    {"cwd": 5},
    {"env": {"A=B": "x"}},
    {"env": {"A": "nul\u0000byte"}},
    {"name": 5},
    {"name": "n" * 129},
    {"isolator": "chroot"},
    {"isolator": 1},
    {"image": 1},
]


@pytest.mark.parametrize("spec", CREATE_BAD, ids=lambda s: repr(s)[:40])
def test_create_invalid_request(client, spec):
    check_error(client.request("POST", "/v1/sandboxes", spec), 400, "invalid_request")


def test_create_name_limit_is_inclusive(client):
    # 128 bytes is fine (the autouse check is for the failed calls only; clean up here)
    sb = client.create({"name": "é" * 64})
    assert sb.info["name"] == "é" * 64
    assert client.delete(sb.id).status == 204
    check_error(client.request("POST", "/v1/sandboxes", {"name": "é" * 64 + "x"}), 400,
                "invalid_request")


SHELL_BAD = [
    {},
    {"command": 5},
    {"command": None},
    {"command": ["ls"]},
    {"command": "ls", "bogus": True},
    {"command": "ls", "timeout_ms": "5"},
    {"command": "ls", "timeout_ms": 0},
    {"command": "ls", "timeout_ms": -1},
    {"command": "ls", "env": {"A": 1}},
    {"command": "ls", "env": "A=1"},
    {"command": "ls", "cwd": 1},
    {"command": "ls", "stdin": 1},
]


@pytest.mark.parametrize("body", SHELL_BAD, ids=lambda s: repr(s)[:40])
def test_shell_invalid_request(sandbox, body):
    check_error(sandbox.shell_raw(body), 400, "invalid_request")


def test_execute_unknown_field(sandbox):
    check_error(sandbox.execute_raw({"code": "1", "runtime": "python", "bogus": 1}), 400,
                "invalid_request")


def test_errors_change_nothing_in_sandbox(sandbox):
    """A refused command never ran."""
    sandbox.sh("rm -f /tmp/should-not-exist")
    for body in ({"command": "touch /tmp/should-not-exist", "bogus": 1},
                 {"command": "touch /tmp/should-not-exist", "timeout_ms": "x"},
                 {"command": "touch /tmp/should-not-exist", "env": {"A": 1}}):
        check_error(sandbox.shell_raw(body), 400, "invalid_request")
    assert sandbox.shell("test -e /tmp/should-not-exist")["exitCode"] == 1


# --- routes and methods ------------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("GET", "/"),
    ("GET", "/nope"),
    ("GET", "/v1"),
    ("GET", "/v1/nope"),
    ("GET", "/v2/sandboxes"),
    ("POST", "/v1/sandboxez"),
    ("GET", "/v1/sandboxes/{id}/nope"),
    ("POST", "/v1/sandboxes/{id}/shell/extra"),
    ("GET", "/v1/sandboxes/{id}/files/nope"),
])
def test_unknown_route(client, sandbox, method, path):
    check_error(client.request(method, path.format(id=sandbox.id)), 404, "not_found")


@pytest.mark.parametrize("method,path", [
    ("POST", "/health"),
    ("DELETE", "/health"),
    ("PUT", "/v1/sandboxes"),
    ("DELETE", "/v1/sandboxes"),
    ("PATCH", "/v1/sandboxes/{id}"),
    ("POST", "/v1/sandboxes/{id}"),
    ("GET", "/v1/sandboxes/{id}/shell"),
    ("DELETE", "/v1/sandboxes/{id}/execute"),
    ("GET", "/v1/sandboxes/{id}/upload"),
    ("POST", "/v1/sandboxes/{id}/download?path=/x"),
    ("POST", "/v1/sandboxes/{id}/files?path=/x"),
    ("DELETE", "/v1/sandboxes/{id}/files/list?path=/x"),
    ("GET", "/v1/sandboxes/{id}/files/mkdir"),
    ("PUT", "/v1/sandbox/{id}/shell"),
])
def test_wrong_method(client, sandbox, method, path):
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    r = client.request(method, path.format(id=sandbox.id), body)
    check_error(r, 405, "method_not_allowed")
    # RFC 9110: a 405 lists the methods the resource has.
    allowed = [m.strip() for m in (r.header("allow") or "").split(",") if m.strip()]
    assert allowed and method not in allowed, r.headers


SANDBOX_ROUTES = [
    ("GET", "", None),
    ("DELETE", "", None),
    ("POST", "/shell", {"command": "true"}),
    ("POST", "/execute", {"code": "1", "runtime": "python"}),
    ("POST", "/upload", {"data": "eA==", "path": "/tmp/x"}),
    ("GET", "/download?path=/tmp/x", None),
    ("PUT", "/files?path=/tmp/x", b"x"),
    ("GET", "/files?path=/tmp/x", None),
    ("DELETE", "/files?path=/tmp/x", None),
    ("GET", "/files/list?path=/tmp", None),
    ("GET", "/files/stat?path=/tmp", None),
    ("POST", "/files/mkdir", {"path": "/tmp/y"}),
]


@pytest.mark.parametrize("sid", ["zzzzzzzzz0", "a123456789", "NOTANID", "x" * 200])
@pytest.mark.parametrize("prefix", ["/v1/sandboxes", "/v1/sandbox"])
@pytest.mark.parametrize("method,suffix,body", SANDBOX_ROUTES,
                         ids=["%s%s" % (m, s.split("?")[0]) for m, s, _ in SANDBOX_ROUTES])
def test_unknown_sandbox(client, prefix, sid, method, suffix, body):
    r = client.request(method, "%s/%s%s" % (prefix, sid, suffix), body)
    check_error(r, 404, "sandbox_not_found")


# --- sizes -------------------------------------------------------------------------


def test_body_over_limit(client, sandbox):
    limit = 64 * MiB
    prefix = b'{"command": "echo '
    suffix = b'"}'
    total = limit + 1
    head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % (sandbox.path("/shell"), total)).encode()
    filler = total - len(prefix) - len(suffix)

    def chunks():
        yield prefix
        left = filler
        while left:
            n = min(left, MiB)
            yield b"x" * n
            left -= n
        yield suffix

    r, _ = stream_request(client.host, client.port, head, chunks(), method="POST")
    assert r is not None, "forged closed the connection without a 413"
    check_error(r, 413, "payload_too_large")


def test_header_too_large(client):
    head = (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (70 * 1024)
            + b"\r\n\r\n")
    r = client.raw(head)
    assert r is not None, "forged closed the connection without a 431"
    check_error(r, 431, "header_too_large")


def test_many_headers_under_limit(client):
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(
        b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(90)) + b"Connection: close\r\n\r\n"
    r = client.raw(head)
    assert r is not None and r.status == 200


# --- malformed HTTP and misbehaving clients ----------------------------------------


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello
    b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
    b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n",
])
def test_malformed_http(client, data):
    r = client.raw(data, timeout=10)
    if r is not None:  # closing the connection is a fine answer too
        assert 400 <= r.status < 500 or r.status == 505, r.describe()
        assert r.status != 404


def test_client_vanishes_mid_command(client, sandbox):
    body = b'{"command": "sleep 2; echo late > /tmp/vanish"}'
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % (sandbox.path("/shell"), len(body))).encode()
    with socket.create_connection((client.host, client.port), timeout=10) as s:
        s.sendall(head + body)
        time.sleep(0.5)
    assert client.health().status == 200
    assert sandbox.sh("echo still here") == "still here\n"


def test_truncated_body_then_close(client, sandbox):
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n{\"command\": \"touch /tmp/trunc\"" %
            sandbox.path("/shell")).encode()
    with socket.create_connection((client.host, client.port), timeout=10) as s:
        s.sendall(head)
    time.sleep(0.3)
    assert sandbox.shell("test -e /tmp/trunc")["exitCode"] == 1


def test_slow_clients_do_not_block_others(client):
    """Twenty half-sent requests (slowloris) while others are served at once."""
    socks = []
    try:
        for _ in range(20):
            s = socket.create_connection((client.host, client.port), timeout=10)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        t0 = time.monotonic()
        for _ in range(5):
            assert client.health().status == 200
        assert time.monotonic() - t0 < 2
    finally:
        for s in socks:
            s.close()


def test_parallel_requests(client):
    errors = []

    def hit():
        try:
            for _ in range(10):
                if client.health().status != 200:
                    errors.append("bad status")
        except OSError as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=hit) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []


def test_error_content_type_and_shape_everywhere(client, sandbox):
    for r in (client.request("GET", "/nope"),
              client.request("PUT", "/v1/sandboxes", b"{}"),
              client.get("zzzzzzzzz0"),
              sandbox.download_raw("/no/such/file"),
              client.request("POST", "/v1/sandboxes", b"{", {"Content-Type": "application/json"})):
        doc = check_error(r, r.status)
        assert set(doc) >= {"error", "code"}
        assert 400 <= r.status < 500


def test_at_capacity(forged_factory):
    f = forged_factory(["--max-sandboxes", "2"])
    a = f.client.create()
    f.client.create()
    before = f.client.list_ids()
    check_error(f.client.request("POST", "/v1/sandboxes"), 503, "at_capacity")
    assert f.client.list_ids() == before
    assert f.client.delete(a.id).status == 204
    f.client.create()
