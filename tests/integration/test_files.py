"""File routes: upload/download, PUT/GET/DELETE files, list, stat, mkdir (docs/api.md
"Files"), and the file-API escape attempts of SECURITY.md U1-U3, U5-U7."""

import http.client
import base64
import hashlib
import os
import secrets
import time

import pytest

from forge_client import MiB, TIME_RE, check_error, q, stream_request

HOST_SHADOW = "/etc/shadow"


def _host_bytes(path):
    with open(path, "rb") as f:
        return f.read()


# --- upload / download -------------------------------------------------------------


def test_upload_download_binary(sandbox):
    data = os.urandom(MiB)
    doc = sandbox.upload("/tmp/up/bin/random.bin", data)
    assert doc["size"] == MiB and doc["path"] == "/tmp/up/bin/random.bin"
    r = sandbox.download_raw("/tmp/up/bin/random.bin")
    assert r.status == 200 and r.content_type == "application/octet-stream"
    assert r.body == data
    # the sandbox sees the same bytes
    digest = sandbox.sh("sha256sum /tmp/up/bin/random.bin").split()[0]
    assert digest == hashlib.sha256(data).hexdigest()


def test_upload_empty_file(sandbox):
    assert sandbox.upload("/tmp/empty.bin", b"")["size"] == 0
    assert sandbox.download("/tmp/empty.bin") == b""


def test_upload_replaces(sandbox):
    sandbox.upload("/tmp/replace.txt", b"first version, longer")
    sandbox.upload("/tmp/replace.txt", b"second")
    assert sandbox.download("/tmp/replace.txt") == b"second"


def test_upload_invalid_base64(sandbox):
    r = sandbox.req("POST", "/upload", {"data": "***not base64***", "path": "/tmp/bad64"})
    check_error(r, 400, "invalid_request")
    check_error(sandbox.download_raw("/tmp/bad64"), 404, "path_not_found")


def test_upload_missing_fields(sandbox):
    check_error(sandbox.req("POST", "/upload", {"path": "/tmp/x"}), 400, "invalid_request")
    check_error(sandbox.req("POST", "/upload", {"data": ""}), 400, "invalid_request")


def test_relative_paths_resolve_against_cwd(sandbox):
    sandbox.upload("rel/dir/a.txt", b"relative upload")
    assert sandbox.sh("cat /root/rel/dir/a.txt") == "relative upload"
    assert sandbox.download("rel/dir/a.txt") == b"relative upload"
    sandbox.put_file("rel/b.txt", b"relative put")
    assert sandbox.sh("cat /root/rel/b.txt") == "relative put"
    assert sandbox.get_file("/root/rel/b.txt") == b"relative put"
    st = sandbox.stat("rel/b.txt")
    assert st["name"] == "b.txt" and st["size"] == len(b"relative put")


def test_relative_paths_follow_sandbox_cwd(make_sandbox):
    sb = make_sandbox({"cwd": "/tmp"})
    sb.upload("in-tmp.txt", b"x")
    assert sb.sh("cat /tmp/in-tmp.txt") == "x"
    assert sb.shell("test -e /root/in-tmp.txt")["exitCode"] != 0


# --- PUT / GET raw -----------------------------------------------------------------


def test_put_get_20mb(sandbox):
    data = os.urandom(20 * MiB)
    r = sandbox.put_file_raw("/tmp/big/twenty.bin", data,
                             headers={"Content-Type": "application/octet-stream"})
    assert r.status == 200, r.describe()
    doc = r.json()
    assert doc["size"] == 20 * MiB and doc["path"] == "/tmp/big/twenty.bin"
    r = sandbox.get_file_raw("/tmp/big/twenty.bin")
    assert r.status == 200 and r.content_type == "application/octet-stream"
    assert len(r.body) == 20 * MiB
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(data).hexdigest()
    assert r.header("transfer-encoding", "").lower() == "chunked" \
        or int(r.header("content-length")) == 20 * MiB
    assert sandbox.sh("stat -c %s /tmp/big/twenty.bin") == "%d\n" % (20 * MiB)


def test_put_chunked_request_body(sandbox):
    parts = [os.urandom(100000) for _ in range(7)]
    r = sandbox.put_file_raw("/tmp/chunked.bin", iter(parts))
    assert r.status == 200, r.describe()
    assert r.json()["size"] == 700000
    assert sandbox.get_file("/tmp/chunked.bin") == b"".join(parts)


def test_put_expect_100_continue(sandbox, client):
    """curl (so libforge and forgectl) sends Expect: 100-continue for big uploads."""
    import http.client
    import socket
    body = os.urandom(2 * MiB)
    head = ("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n"
            "Connection: close\r\n\r\n"
            % (sandbox.path("/files?path=" + q("/tmp/expect.bin")), len(body))).encode()
    with socket.create_connection((client.host, client.port), timeout=10) as s:
        s.sendall(head)
        interim = b""
        while b"\r\n\r\n" not in interim:
            d = s.recv(1)
            assert d, "connection closed before 100 Continue"
            interim += d
        assert interim.startswith(b"HTTP/1.1 100"), interim
        s.sendall(body)
        resp = http.client.HTTPResponse(s, method="PUT")
        resp.begin()
        assert resp.status == 200, resp.read()
        resp.read()
    assert sandbox.get_file("/tmp/expect.bin") == body


def test_put_replaces_atomically(sandbox):
    sandbox.put_file("/tmp/atomic.txt", b"A" * 5000)
    sandbox.put_file("/tmp/atomic.txt", b"B" * 10)
    assert sandbox.get_file("/tmp/atomic.txt") == b"B" * 10


def test_put_aborted_upload_leaves_old_file(sandbox, client):
    """A client that vanishes mid-PUT leaves the previous content whole."""
    sandbox.put_file("/tmp/abort.txt", b"original")
    head = ("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (sandbox.path("/files?path=" + q("/tmp/abort.txt")), 10 * MiB)).encode()
    import socket
    with socket.create_connection((client.host, client.port), timeout=10) as s:
        s.sendall(head + b"P" * MiB)
        time.sleep(0.3)
    deadline = time.monotonic() + 5
    while "forge-" in sandbox.sh("ls -a /tmp") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sandbox.get_file("/tmp/abort.txt") == b"original"
    # The cancelled transfer's temporary file is gone too.
    assert ".abort.txt.forge-" not in sandbox.sh("ls -a /tmp")
    assert client.health().status == 200


def test_put_creates_parents(sandbox):
    sandbox.put_file("/tmp/p1/p2/p3/leaf.txt", b"leaf")
    assert sandbox.stat("/tmp/p1/p2")["type"] == "directory"


# --- list / stat / mkdir / delete --------------------------------------------------


def test_list(sandbox):
    sandbox.sh("rm -rf /tmp/ls && mkdir -p /tmp/ls/sub && printf abc > /tmp/ls/b.txt && "
               "printf 12345 > /tmp/ls/a.txt && ln -s a.txt /tmp/ls/link && "
               "chmod 640 /tmp/ls/a.txt && chmod 750 /tmp/ls/sub && mkfifo /tmp/ls/pipe")
    doc = sandbox.list_dir("/tmp/ls")
    assert doc["path"] == "/tmp/ls"
    names = [e["name"] for e in doc["entries"]]
    assert names == ["a.txt", "b.txt", "link", "pipe", "sub"]
    by = {e["name"]: e for e in doc["entries"]}
    for e in doc["entries"]:
        assert set(("name", "type", "size", "mode", "mtime")) <= set(e), e
        assert TIME_RE.match(e["mtime"]), e
        assert isinstance(e["mode"], int) and isinstance(e["size"], int)
    assert by["a.txt"]["type"] == "file" and by["a.txt"]["size"] == 5
    assert by["a.txt"]["mode"] == 0o640
    assert by["b.txt"]["size"] == 3
    assert by["sub"]["type"] == "directory" and by["sub"]["mode"] == 0o750
    assert by["link"]["type"] == "symlink"
    assert by["pipe"]["type"] == "other"


def test_list_errors(sandbox):
    check_error(sandbox.list_dir_raw("/tmp/no/such/dir"), 404, "path_not_found")
    sandbox.put_file("/tmp/plainfile", b"x")
    check_error(sandbox.list_dir_raw("/tmp/plainfile"), 400, "not_a_directory")


def test_stat(sandbox):
    sandbox.sh("mkdir -p /tmp/st && printf hello > /tmp/st/f && chmod 604 /tmp/st/f && "
               "ln -sfn /tmp/st/f /tmp/st/l")
    st = sandbox.stat("/tmp/st/f")
    assert st["path"] == "/tmp/st/f" and st["name"] == "f"
    assert st["type"] == "file" and st["size"] == 5 and st["mode"] == 0o604
    assert TIME_RE.match(st["mtime"])
    st = sandbox.stat("/tmp/st/l")
    assert st["type"] == "symlink" and st["link_target"] == "/tmp/st/f"
    st = sandbox.stat("/tmp/st")
    assert st["type"] == "directory" and st["name"] == "st"
    check_error(sandbox.stat_raw("/tmp/st/missing"), 404, "path_not_found")


def test_mkdir(sandbox):
    r = sandbox.mkdir_raw("/tmp/mk")
    assert r.status == 201, r.describe()
    assert r.json()["path"] == "/tmp/mk"
    assert sandbox.stat("/tmp/mk")["type"] == "directory"
    check_error(sandbox.mkdir_raw("/tmp/mk"), 409, "file_exists")
    check_error(sandbox.mkdir_raw("/tmp/mk2/a/b"), 404, "path_not_found")
    r = sandbox.mkdir_raw("/tmp/mk2/a/b", parents=True)
    assert r.status == 201, r.describe()
    assert sandbox.sh("test -d /tmp/mk2/a/b && echo yes") == "yes\n"
    sandbox.put_file("/tmp/mkfile", b"x")
    check_error(sandbox.mkdir_raw("/tmp/mkfile/sub", parents=True), 400, "not_a_directory")


def test_delete(sandbox):
    sandbox.put_file("/tmp/del/one.txt", b"1")
    sandbox.put_file("/tmp/del/deep/two.txt", b"2")
    r = sandbox.delete_file_raw("/tmp/del/one.txt")
    assert r.status == 204 and r.body == b""
    check_error(sandbox.stat_raw("/tmp/del/one.txt"), 404, "path_not_found")
    check_error(sandbox.delete_file_raw("/tmp/del/one.txt"), 404, "path_not_found")
    check_error(sandbox.delete_file_raw("/tmp/del"), 409, "directory_not_empty")
    assert sandbox.get_file("/tmp/del/deep/two.txt") == b"2"
    assert sandbox.delete_file_raw("/tmp/del", recursive=True).status == 204
    assert sandbox.shell("test -e /tmp/del")["exitCode"] != 0
    sandbox.sh("mkdir /tmp/emptydir")
    assert sandbox.delete_file_raw("/tmp/emptydir").status == 204


def test_delete_symlink_not_target(sandbox):
    sandbox.sh("mkdir -p /tmp/keep && echo k > /tmp/keep/k && ln -sfn /tmp/keep /tmp/keeplink")
    assert sandbox.delete_file_raw("/tmp/keeplink", recursive=True).status == 204
    assert sandbox.sh("cat /tmp/keep/k") == "k\n"


def test_not_found(sandbox):
    for p in ("/tmp/nope.txt", "nope/relative.txt"):
        check_error(sandbox.download_raw(p), 404, "path_not_found")
        check_error(sandbox.get_file_raw(p), 404, "path_not_found")


def test_download_directory(sandbox):
    check_error(sandbox.download_raw("/tmp"), 400, "is_a_directory")
    check_error(sandbox.get_file_raw("/root"), 400, "is_a_directory")


def test_download_fifo_does_not_hang(sandbox):
    sandbox.sh("rm -f /tmp/fifo && mkfifo /tmp/fifo")
    t0 = time.monotonic()
    check_error(sandbox.download_raw("/tmp/fifo", timeout=15), 400, "not_a_regular_file")
    check_error(sandbox.get_file_raw("/tmp/fifo", timeout=15), 400, "not_a_regular_file")
    assert time.monotonic() - t0 < 10


def test_download_devices_and_sockets(sandbox):
    sandbox.sh("python3 -c \"import socket; s = socket.socket(socket.AF_UNIX); "
               "s.bind('/tmp/sock')\"")
    for p in ("/dev/zero", "/dev/null", "/dev/urandom", "/tmp/sock"):
        t0 = time.monotonic()
        check_error(sandbox.download_raw(p, timeout=15), 400, "not_a_regular_file")
        assert time.monotonic() - t0 < 10, p


def test_put_onto_directory(sandbox):
    sandbox.sh("mkdir -p /tmp/isdir")
    check_error(sandbox.put_file_raw("/tmp/isdir", b"x"), 400, "is_a_directory")
    assert sandbox.stat("/tmp/isdir")["type"] == "directory"


# --- invalid paths (U7) ------------------------------------------------------------


def test_nul_in_path(sandbox):
    for r in (sandbox.req("GET", "/download?path=a%00b"),
              sandbox.req("GET", "/files?path=%2Ftmp%2Fa%00b"),
              sandbox.req("GET", "/files/stat?path=/tmp/x%00"),
              sandbox.req("PUT", "/files?path=/tmp/n%00ul", b"x"),
              sandbox.req("POST", "/upload", {"data": "eA==", "path": "/tmp/a\u0000b"}),
              sandbox.req("POST", "/files/mkdir", {"path": "/tmp/d\u0000ir"})):
        check_error(r, 400, "invalid_path")
    # nothing was created under the part before the NUL either
    assert sandbox.shell("test -e /tmp/n || test -e /tmp/d || test -e /root/a || "
                         "test -e /tmp/a")["exitCode"] != 0


def test_path_too_long(sandbox):
    long = "/tmp/" + "a" * 5000
    check_error(sandbox.download_raw(long), 400, "invalid_path")
    check_error(sandbox.put_file_raw(long, b"x"), 400, "invalid_path")
    check_error(sandbox.req("POST", "/upload", {"data": "eA==", "path": long}), 400,
                "invalid_path")
    deep = "/tmp" + "/d" * 2600  # 5204 bytes of short components
    check_error(sandbox.get_file_raw(deep), 400, "invalid_path")


def test_empty_path(sandbox):
    check_error(sandbox.req("GET", "/download?path="), 400, "invalid_path")
    check_error(sandbox.req("POST", "/upload", {"data": "eA==", "path": ""}), 400,
                "invalid_path")


# --- escapes (U1, U2, U3, U5) ------------------------------------------------------


def _sandbox_view(sb, path):
    """The bytes the sandbox itself has at `path`, or None."""
    res = sb.shell("base64 -w0 %s" % path)
    return base64.b64decode(res["stdout"]) if res["exitCode"] == 0 else None


def _assert_not_host(sb, r, host_bytes, inside_path):
    if r.status == 200:
        assert r.body != host_bytes, "file API returned the host's file"
        assert r.body == _sandbox_view(sb, inside_path)
    else:
        assert 400 <= r.status < 500, r.describe()
        check_error(r, r.status)


ESCAPES = [
    "../../../../../../../../etc/shadow",
    "/../../etc/shadow",
    "/etc/shadow",
    "/etc/../etc/./shadow",
    "/proc/self/root/etc/shadow",
    "/proc/1/root/etc/shadow",
    "/proc/self/cwd/../../../../etc/shadow",
    "/root/rootlink/etc/shadow",
    "rootlink/etc/shadow",
    "/root/rootlink/../../../etc/shadow",
    "/tmp/dotdot/../../../../etc/shadow",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_read_escape(sandbox, path):
    sandbox.sh("ln -sfn / /root/rootlink && ln -sfn ../../../../.. /tmp/dotdot")
    host = _host_bytes(HOST_SHADOW)
    assert host, "the host's /etc/shadow is empty: the comparison would prove nothing"
    _assert_not_host(sandbox, sandbox.download_raw(path), host, "/etc/shadow")
    _assert_not_host(sandbox, sandbox.get_file_raw(path), host, "/etc/shadow")


def test_read_host_marker_is_invisible(sandbox):
    name = "forge-it-marker-" + secrets.token_hex(6)
    for d in ("/root", "/home", "/tmp"):
        host_path = os.path.join(d, name)
        with open(host_path, "wb") as f:
            f.write(b"HOST-ONLY " + name.encode())
        try:
            for p in (host_path, "/root/rootlink" + host_path, "/proc/1/root" + host_path,
                      "../../../.." + host_path):
                r = sandbox.download_raw(p)
                assert r.status in (400, 403, 404), (p, r.describe())
                assert b"HOST-ONLY" not in r.body
        finally:
            os.unlink(host_path)


def test_write_escape(sandbox):
    sandbox.sh("ln -sfn / /root/rootlink")
    name = "forge-it-escape-" + secrets.token_hex(6)
    targets = ["../../../../../../tmp/" + name, "/proc/self/root/tmp/" + name,
               "/proc/1/root/tmp/" + name, "/root/rootlink/tmp/" + name,
               "rootlink/tmp/" + name + "b"]
    try:
        for p in targets:
            r1 = sandbox.upload_raw(p, b"escaped")
            r2 = sandbox.put_file_raw(p, b"escaped")
            for r in (r1, r2):
                assert r.status == 200 or 400 <= r.status < 500, r.describe()
            assert not os.path.exists("/tmp/" + name)
            assert not os.path.exists("/tmp/" + name + "b")
    finally:
        for n in (name, name + "b"):
            if os.path.exists("/tmp/" + n):
                os.unlink("/tmp/" + n)


def test_symlink_inside_is_followed(sandbox):
    sandbox.sh("printf real > /tmp/realfile && ln -sfn /tmp/realfile /tmp/linkfile")
    assert sandbox.download("/tmp/linkfile") == b"real"


def test_put_streamed_in_pieces(sandbox, client):
    """A PUT body that arrives in 1 MiB writes (Content-Length known up front)."""
    head = ("PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (sandbox.path("/files?path=" + q("/tmp/partial.bin")), 4 * MiB)).encode()
    chunks = iter([b"z" * MiB] * 4)
    r, sent = stream_request(client.host, client.port, head, chunks)
    assert r is not None and r.status == 200, r and r.describe()
    assert sent == 4 * MiB
    assert sandbox.get_file("/tmp/partial.bin") == b"z" * (4 * MiB)


def test_failed_put_keeps_the_connection_usable(sandbox, client):
    """A PUT the agent refuses (onto a directory) is answered, the rest of its body is
    drained, and the same keep-alive connection carries the next requests."""
    conn = http.client.HTTPConnection(client.host, client.port, timeout=10)
    try:
        for path, status in (("/root", 400), ("/tmp/after-failed-put", 200), ("/root", 400)):
            conn.request("PUT", sandbox.path("/files?path=" + q(path)), body=b"x" * (256 * 1024))
            r = conn.getresponse()
            r.read()
            assert r.status == status, (path, r.status)
        conn.request("GET", "/health")
        r = conn.getresponse()
        assert r.status == 200 and b'"ok"' in r.read()
    finally:
        conn.close()
    assert sandbox.get_file("/tmp/after-failed-put") == b"x" * (256 * 1024)
