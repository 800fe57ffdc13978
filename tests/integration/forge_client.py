"""A tiny standard-library HTTP client for the forged integration tests.

`request()` is the primitive: it returns a `Response` (a named tuple of status, headers,
body bytes) and never raises on an HTTP error status, so tests can assert on 4xx/5xx.
`raw_exchange()` and `RawConn` send arbitrary bytes for malformed-request tests.
`ForgeClient` and `Sandbox` wrap the routes of docs/api.md.
"""

import base64
import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.parse
from typing import NamedTuple

DEFAULT_TIMEOUT = 120.0
MiB = 1024 * 1024

ID_RE = re.compile(r"^[a-z][a-z0-9]{9}$")
# RFC 3339 with milliseconds (docs/api.md: created_at, updated_at, mtime).
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(Z|[+-]\d{2}:\d{2})$")

RESULT_KEYS = ("success", "stdout", "stderr", "exitCode", "exit_code", "executionTime",
               "execution_time_ms", "timedOut", "truncated", "oomKilled", "signal")
SANDBOX_KEYS = ("id", "status", "hibernated", "image", "isolator", "name", "metadata", "env", "cwd",
                "limits", "created_at", "updated_at", "idle_timeout_s", "hibernate_after_s")
LIMIT_KEYS = ("cpus", "memory_mb", "pids", "timeout_ms")


class Response(NamedTuple):
    status: int
    headers: dict  # lower-case name -> value (repeated headers joined with ", ")
    body: bytes

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    @property
    def content_type(self):
        return (self.headers.get("content-type") or "").split(";")[0].strip().lower()

    def describe(self):
        text = self.body[:2000].decode("utf-8", "replace")
        return "HTTP %d %s: %s" % (self.status, self.headers.get("content-type"), text)


def _split(url):
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http":
        raise ValueError("only http:// URLs: %r" % url)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return u.hostname, u.port or 80, path


def encode_body(body, headers):
    """None -> no body; bytes -> raw; iterator/generator -> chunked; else JSON."""
    if body is None or isinstance(body, (bytes, bytearray, memoryview)):
        return body
    if hasattr(body, "__next__"):
        return body
    headers.setdefault("Content-Type", "application/json")
    return json.dumps(body).encode("utf-8")


def request(method, url, body=None, headers=None, timeout=DEFAULT_TIMEOUT):
    """One HTTP request on a fresh connection -> Response(status, headers, body)."""
    host, port, path = _split(url)
    hdrs = dict(headers or {})
    data = encode_body(body, hdrs)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        if data is not None and hasattr(data, "__next__"):
            hdrs.setdefault("Transfer-Encoding", "chunked")
            conn.request(method, path, body=data, headers=hdrs, encode_chunked=True)
        else:
            conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        return Response(resp.status, _headers(resp), payload)
    finally:
        conn.close()


def _headers(resp):
    out = {}
    for k, v in resp.getheaders():
        k = k.lower()
        out[k] = out[k] + ", " + v if k in out else v
    return out


def json_request(method, url, body=None, headers=None, timeout=DEFAULT_TIMEOUT):
    """-> (status, parsed JSON or None)."""
    r = request(method, url, body, headers, timeout)
    try:
        return r.status, r.json()
    except ValueError:
        return r.status, None


def read_response(sock, method="GET"):
    """Read one HTTP response from a connected socket -> Response."""
    resp = http.client.HTTPResponse(sock, method=method)
    resp.begin()
    payload = resp.read()
    return Response(resp.status, _headers(resp), payload)


def raw_exchange(host, port, data, timeout=15.0, method="GET"):
    """Send raw bytes, then read one response. Returns Response, or None when the
    server closed the connection without answering (also a valid reaction to garbage)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        try:
            return read_response(s, method)
        except (http.client.RemoteDisconnected, ConnectionResetError,
                http.client.BadStatusLine, BrokenPipeError):
            return None


def stream_request(host, port, head, chunks, timeout=120.0, method="PUT"):
    """Send `head` then every chunk of `chunks` from a second thread while this thread
    waits for the response, so a server that answers early (413) is seen. Returns
    (Response or None, bytes_sent)."""
    s = socket.create_connection((host, port), timeout=timeout)
    sent = [0]

    def pump():
        try:
            for c in chunks:
                s.sendall(c)
                sent[0] += len(c)
        except OSError:
            pass

    try:
        s.sendall(head)
        t = threading.Thread(target=pump, daemon=True)
        t.start()
        try:
            r = read_response(s, method)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            r = None
        return r, sent[0]
    finally:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def check_error(r, status, code=None):
    """Assert `r` is a docs/api.md error: status, JSON {"error": str, "code": str}."""
    assert r.status == status, "expected %d, got %s" % (status, r.describe())
    assert r.content_type == "application/json", r.describe()
    doc = r.json()
    assert isinstance(doc, dict), r.describe()
    assert isinstance(doc.get("error"), str) and doc["error"], r.describe()
    assert isinstance(doc.get("code"), str) and re.match(r"^[a-z][a-z0-9_]*$", doc["code"]), \
        r.describe()
    if code is not None:
        assert doc["code"] == code, "expected code %s, got %s" % (code, r.describe())
    return doc


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_result(res):
    """Assert the shell/execute result object shape of docs/api.md; returns it."""
    for k in RESULT_KEYS:
        assert k in res, "result lacks %r: %r" % (k, res)
    assert isinstance(res["success"], bool)
    assert isinstance(res["stdout"], str) and isinstance(res["stderr"], str)
    assert isinstance(res["exitCode"], int) and not isinstance(res["exitCode"], bool)
    assert res["exitCode"] == res["exit_code"]
    assert is_number(res["executionTime"]) and res["executionTime"] >= 0
    assert res["executionTime"] == res["execution_time_ms"]
    for k in ("timedOut", "truncated", "oomKilled"):
        assert isinstance(res[k], bool), (k, res)
    assert res["signal"] is None or (isinstance(res["signal"], str)
                                     and res["signal"].startswith("SIG")), res
    assert res["success"] == (res["exitCode"] == 0), res
    return res


def check_sandbox(obj):
    """Assert the sandbox object shape of docs/api.md; returns it."""
    for k in SANDBOX_KEYS:
        assert k in obj, "sandbox object lacks %r: %r" % (k, obj)
    assert ID_RE.match(obj["id"]), obj["id"]
    assert obj["status"] in ("creating", "running", "suspended", "failed"), obj
    assert obj["hibernated"] in (False, obj["status"] == "suspended"), obj  # only a suspended one
    if obj["status"] == "failed":
        assert isinstance(obj.get("reason"), str) and obj["reason"], obj
    assert isinstance(obj["image"], str) and obj["image"]
    assert obj["isolator"] in ("ns", "qemu"), obj  # --isolator ns, and test_qemu.py's VMs
    assert obj["name"] is None or isinstance(obj["name"], str)
    for k in ("metadata", "env"):
        assert isinstance(obj[k], dict) and all(isinstance(v, str) for v in obj[k].values()), obj
    assert isinstance(obj["cwd"], str) and obj["cwd"].startswith("/")
    assert isinstance(obj["limits"], dict)
    for k in LIMIT_KEYS:
        assert k in obj["limits"] and is_number(obj["limits"][k]), obj["limits"]
    assert TIME_RE.match(obj["created_at"]), obj["created_at"]
    assert TIME_RE.match(obj["updated_at"]), obj["updated_at"]
    assert obj["updated_at"] >= obj["created_at"]
    return obj


def stable_list(client):
    """The sandbox list without `last_active_at`, which every call on a sandbox moves
    (a refused one too): for tests that check that a call changed nothing else."""
    return [{k: v for k, v in s.items() if k != "last_active_at"} for s in client.list()]


def q(path):
    """URL-encode a file path for ?path= exactly like JS encodeURIComponent."""
    return urllib.parse.quote(path, safe="-_.!~*'()")


class ForgeClient:
    def __init__(self, url):
        self.url = url.rstrip("/")
        host, port, _ = _split(self.url)
        self.host, self.port = host, port

    def request(self, method, path, body=None, headers=None, timeout=DEFAULT_TIMEOUT):
        return request(method, self.url + path, body, headers, timeout)

    def raw(self, data, timeout=15.0, method="GET"):
        return raw_exchange(self.host, self.port, data, timeout, method)

    def health(self, timeout=5.0):
        return self.request("GET", "/health", timeout=timeout)

    def create(self, spec=None, expect=201, prefix="/v1/sandboxes", timeout=DEFAULT_TIMEOUT):
        """Create a sandbox; spec None sends no body. Returns a Sandbox."""
        r = self.request("POST", prefix, spec, timeout=timeout)
        assert r.status == expect, r.describe()
        return Sandbox(self, r.json())

    def get(self, sid):
        return self.request("GET", "/v1/sandboxes/%s" % sid)

    def list(self, query=""):
        r = self.request("GET", "/v1/sandboxes" + (("?" + query) if query else ""))
        assert r.status == 200, r.describe()
        doc = r.json()
        assert isinstance(doc, dict) and isinstance(doc.get("sandboxes"), list), doc
        return doc["sandboxes"]

    def list_ids(self, query=""):
        return [s["id"] for s in self.list(query)]

    def delete(self, sid):
        return self.request("DELETE", "/v1/sandboxes/%s" % sid)

    def sandbox(self, sid):
        return Sandbox(self, {"id": sid})


class Sandbox:
    """Routes of one sandbox. Methods ending in _raw return the Response; the others
    assert the documented success status and return parsed JSON (or bytes)."""

    def __init__(self, client, info, prefix="/v1/sandboxes"):
        self.client = client
        self.info = info
        self.id = info["id"]
        self.prefix = prefix

    def __repr__(self):
        return "<Sandbox %s>" % self.id

    def path(self, suffix=""):
        return "%s/%s%s" % (self.prefix, self.id, suffix)

    def req(self, method, suffix, body=None, headers=None, timeout=DEFAULT_TIMEOUT):
        return self.client.request(method, self.path(suffix), body, headers, timeout)

    # lifecycle
    def get(self):
        r = self.req("GET", "")
        assert r.status == 200, r.describe()
        return check_sandbox(r.json())

    def delete(self):
        return self.req("DELETE", "")

    # commands
    def shell_raw(self, body, timeout=DEFAULT_TIMEOUT):
        return self.req("POST", "/shell", body, timeout=timeout)

    def shell(self, command, timeout=DEFAULT_TIMEOUT, **fields):
        body = dict(fields, command=command)
        r = self.shell_raw(body, timeout=timeout)
        assert r.status == 200, "shell %r: %s" % (command[:200], r.describe())
        assert r.content_type == "application/json", r.describe()
        return check_result(r.json())

    def sh(self, command, **fields):
        """Run a command that must succeed; return its stdout."""
        res = self.shell(command, **fields)
        assert res["exitCode"] == 0, "command %r failed: %r" % (command[:200], res)
        return res["stdout"]

    def execute_raw(self, body, timeout=DEFAULT_TIMEOUT):
        return self.req("POST", "/execute", body, timeout=timeout)

    def execute(self, code, runtime="python", timeout=DEFAULT_TIMEOUT, **fields):
        body = dict(fields, code=code, runtime=runtime)
        r = self.execute_raw(body, timeout=timeout)
        assert r.status == 200, r.describe()
        return check_result(r.json())

    # files
    def upload_raw(self, path, data):
        return self.req("POST", "/upload", {"data": base64.b64encode(data).decode(), "path": path})

    def upload(self, path, data):
        r = self.upload_raw(path, data)
        assert r.status == 200, r.describe()
        return r.json()

    def download_raw(self, path, timeout=DEFAULT_TIMEOUT):
        return self.req("GET", "/download?path=" + q(path), timeout=timeout)

    def download(self, path):
        r = self.download_raw(path)
        assert r.status == 200, r.describe()
        return r.body

    def put_file_raw(self, path, data, headers=None, timeout=DEFAULT_TIMEOUT):
        return self.req("PUT", "/files?path=" + q(path), data, headers, timeout)

    def put_file(self, path, data):
        r = self.put_file_raw(path, data)
        assert r.status == 200, r.describe()
        return r.json()

    def get_file_raw(self, path, timeout=DEFAULT_TIMEOUT):
        return self.req("GET", "/files?path=" + q(path), timeout=timeout)

    def get_file(self, path):
        r = self.get_file_raw(path)
        assert r.status == 200, r.describe()
        return r.body

    def delete_file_raw(self, path, recursive=False):
        return self.req("DELETE", "/files?path=" + q(path) + ("&recursive=1" if recursive else ""))

    def list_dir_raw(self, path):
        return self.req("GET", "/files/list?path=" + q(path))

    def list_dir(self, path):
        r = self.list_dir_raw(path)
        assert r.status == 200, r.describe()
        return r.json()

    def stat_raw(self, path):
        return self.req("GET", "/files/stat?path=" + q(path))

    def stat(self, path):
        r = self.stat_raw(path)
        assert r.status == 200, r.describe()
        return r.json()

    def mkdir_raw(self, path, parents=None):
        body = {"path": path}
        if parents is not None:
            body["parents"] = parents
        return self.req("POST", "/files/mkdir", body)


def wait_until(pred, timeout=10.0, interval=0.1):
    """Poll pred() until truthy; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def host_pids_matching(token):
    """Host pids whose command line contains `token` (a bytes or str substring)."""
    if isinstance(token, str):
        token = token.encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        if token in cmd:
            out.append(int(name))
    return out


# A shell snippet listing "PID ARGS" of every process visible inside a sandbox, without
# relying on procps being in the image.
PS_SNIPPET = (
    "for p in /proc/[0-9]*; do "
    "c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); "
    "[ -n \"$c\" ] && echo \"${p#/proc/} $c\"; "
    "done; true"
)


def upper_dir(state_dir, sid):
    """The host path of a sandbox's writable layer (read only, for assertions): inside its
    disk-quota filesystem when it has one, else directly in the sandbox directory."""
    base = os.path.join(state_dir, "sandboxes", sid)
    quota = os.path.join(base, "disk", "upper")
    return quota if os.path.isdir(quota) else os.path.join(base, "upper")
