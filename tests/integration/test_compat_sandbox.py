"""Compatibility with the SandboX ForgeIsolator client, request for request.

Mirrored from Deepractice/SandboX, packages/core/src/isolators/ForgeIsolator.ts (commit
eb2624023c26ad4487790785a7b705bf22c8e934) and packages/core/src/state/StateFS.ts; no code
copied. What that client does:

  create    fetch(`${gw}/v1/sandbox`, {method: "POST"})            no body, no Content-Type
            -> needs res.ok (2xx), reads (await res.json()).id
  shell     POST /v1/sandbox/{id}/shell, Content-Type: application/json,
            body JSON.stringify({command}) -> res.ok, reads the JSON as ShellResult
            {success, stdout, stderr, exitCode, executionTime}
  execute   POST /v1/sandbox/{id}/execute, body {code, runtime} (runtime "node"|"python";
            the type also allows "shell") -> same result shape; evaluate() = execute of
            console.log(expr) / print(expr), reads stdout.trim(), throws unless success
  upload    POST /v1/sandbox/{id}/upload, body {data: base64, path} -> res.ok only
  download  GET /v1/sandbox/{id}/download?path=${encodeURIComponent(path)} -> raw bytes
  destroy   DELETE /v1/sandbox/{id} (result ignored)
  StateFS   write: shell `mkdir -p "dir"` then `cat > "path" << 'SANDBOX_EOF'\\n...\\nSANDBOX_EOF`;
            read: `cat "path"`; exists: `test -e "p" && echo "yes" || echo "no"`;
            list: `ls -1 "p" 2>/dev/null`; delete: `rm -rf "p"`.

Node 20's fetch (undici) puts these headers on the wire, in this order (captured against a
local socket): host, connection: keep-alive, [content-type], accept: */*,
accept-language: *, sec-fetch-mode: cors, user-agent: node, accept-encoding: gzip, deflate,
content-length (0 for the body-less POST; absent on GET). It keeps the connection open
between calls. `RawFetch` below replays exactly that.
"""

import base64
import gzip
import http.client
import json
import os
import subprocess
import tempfile
import zlib

import pytest

from forge_client import ID_RE, check_result, q


class RawFetch:
    """One keep-alive connection speaking like Node's fetch."""

    def __init__(self, client):
        self.host, self.port = client.host, client.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def close(self):
        self.conn.close()

    def fetch(self, method, path, json_body=None):
        body = None
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":")).encode()
        c = self.conn
        c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        c.putheader("host", "%s:%d" % (self.host, self.port))
        c.putheader("connection", "keep-alive")
        if body is not None:
            c.putheader("Content-Type", "application/json")
        c.putheader("accept", "*/*")
        c.putheader("accept-language", "*")
        c.putheader("sec-fetch-mode", "cors")
        c.putheader("user-agent", "node")
        c.putheader("accept-encoding", "gzip, deflate")
        if body is not None:
            c.putheader("content-length", str(len(body)))
        elif method in ("POST", "PUT", "PATCH"):
            c.putheader("content-length", "0")
        c.endheaders(body)
        resp = c.getresponse()
        data = resp.read()
        enc = (resp.getheader("content-encoding") or "").lower()
        if enc == "gzip":
            data = gzip.decompress(data)
        elif enc == "deflate":
            data = zlib.decompress(data)
        return resp.status, resp.getheader("content-type") or "", data


@pytest.fixture(scope="module")
def fetch(client):
    f = RawFetch(client)
    yield f
    f.close()


@pytest.fixture(scope="module")
def sid(fetch, client):
    status, ctype, body = fetch.fetch("POST", "/v1/sandbox")
    assert 200 <= status < 300, (status, body)
    doc = json.loads(body)
    assert isinstance(doc["id"], str) and ID_RE.match(doc["id"])
    yield doc["id"]
    client.delete(doc["id"])


def _ok_json(status, body):
    assert 200 <= status < 300, (status, body[:500])
    return json.loads(body)


def _shell(fetch, sid, command):
    status, _, body = fetch.fetch("POST", "/v1/sandbox/%s/shell" % sid, {"command": command})
    res = _ok_json(status, body)
    for k, t in (("success", bool), ("stdout", str), ("stderr", str), ("exitCode", int)):
        assert isinstance(res[k], t), (k, res)
    assert isinstance(res["executionTime"], (int, float))
    return res


def _execute(fetch, sid, code, runtime):
    status, _, body = fetch.fetch("POST", "/v1/sandbox/%s/execute" % sid,
                                  {"code": code, "runtime": runtime})
    res = _ok_json(status, body)
    assert res["success"] == (res["exitCode"] == 0)
    return res


def test_create_is_body_less_post(sid):
    assert ID_RE.match(sid)


def test_shell(fetch, sid):
    res = _shell(fetch, sid, "echo hello; echo oops >&2")
    assert res == {**res, "success": True, "stdout": "hello\n", "stderr": "oops\n",
                   "exitCode": 0}
    check_result(res)


def test_failing_command_is_still_2xx(fetch, sid):
    """The client throws on !res.ok, so a failing command must come back as 200."""
    res = _shell(fetch, sid, "echo nope >&2; exit 7")
    assert res["success"] is False and res["exitCode"] == 7 and res["stderr"] == "nope\n"


def test_execute_node_and_python(fetch, sid):
    res = _execute(fetch, sid, "console.log([1, 2, 3].reduce((a, b) => a + b))", "node")
    assert res["stdout"] == "6\n" and res["success"] is True
    res = _execute(fetch, sid, "import math\nprint(math.factorial(5))", "python")
    assert res["stdout"] == "120\n" and res["success"] is True


def test_evaluate_flow(fetch, sid):
    """evaluate() wraps the expression and reads stdout.trim()."""
    assert _execute(fetch, sid, "console.log(6 * 7)", "node")["stdout"].strip() == "42"
    assert _execute(fetch, sid, "print(6 * 7)", "python")["stdout"].strip() == "42"
    res = _execute(fetch, sid, "print(undefined_name)", "python")
    assert res["success"] is False and "NameError" in res["stderr"]


def test_upload_download(fetch, sid):
    data = os.urandom(300000)
    for path in ("/tmp/compat/blob.bin", "relative/dir/blob.bin", "/tmp/with space/ü ✓.bin"):
        status, _, body = fetch.fetch("POST", "/v1/sandbox/%s/upload" % sid,
                                      {"data": base64.b64encode(data).decode(), "path": path})
        assert 200 <= status < 300, (status, body)
        status, _, got = fetch.fetch("GET", "/v1/sandbox/%s/download?path=%s" % (sid, q(path)))
        assert status == 200 and got == data, path
    assert _shell(fetch, sid, "test -f /root/relative/dir/blob.bin && echo yes")["stdout"] \
        == "yes\n"


def test_download_missing_is_not_ok(fetch, sid):
    status, _, _ = fetch.fetch("GET", "/v1/sandbox/%s/download?path=%s"
                               % (sid, q("/tmp/never/written")))
    assert status == 404


def test_statefs_heredoc_flow(fetch, sid):
    data = 'first line\n$NOT_EXPANDED `not run` "quoted" \'single\'\nlast line'
    path = "state/files/note.txt"
    assert _shell(fetch, sid, 'mkdir -p "state/files"')["success"]
    res = _shell(fetch, sid, "cat > \"%s\" << 'SANDBOX_EOF'\n%s\nSANDBOX_EOF" % (path, data))
    assert res["success"], res
    assert _shell(fetch, sid, 'cat "%s"' % path)["stdout"] == data + "\n"
    assert _shell(fetch, sid, 'test -e "%s" && echo "yes" || echo "no"' % path)["stdout"] \
        .strip() == "yes"
    assert _shell(fetch, sid, 'ls -1 "state/files" 2>/dev/null')["stdout"].strip() \
        .split("\n") == ["note.txt"]
    status, _, got = fetch.fetch("GET", "/v1/sandbox/%s/download?path=%s" % (sid, q(path)))
    assert status == 200 and got == (data + "\n").encode()
    _shell(fetch, sid, 'rm -rf "%s"' % path)
    assert _shell(fetch, sid, 'test -e "%s" && echo "yes" || echo "no"' % path)["stdout"] \
        .strip() == "no"
    assert _shell(fetch, sid, 'ls -1 "state/nowhere" 2>/dev/null')["stdout"] == ""


def test_destroy(fetch, client):
    status, _, body = fetch.fetch("POST", "/v1/sandbox")
    own = _ok_json(status, body)["id"]
    status, _, _ = fetch.fetch("DELETE", "/v1/sandbox/%s" % own)
    assert 200 <= status < 300
    status, _, _ = fetch.fetch("POST", "/v1/sandbox/%s/shell" % own, {"command": "true"})
    assert status == 404
    assert own not in client.list_ids()


NODE_CLIENT = r"""
// A ForgeIsolator-shaped session through Node's own fetch (written for these tests).
const gw = process.argv[2];
const out = {};
async function main() {
  let res = await fetch(`${gw}/v1/sandbox`, { method: "POST" });
  out.createStatus = res.status;
  const id = (await res.json()).id;
  out.id = id;
  const post = (route, body) => fetch(`${gw}/v1/sandbox/${id}/${route}`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
  res = await post("shell", { command: "echo from-node; pwd" });
  out.shellOk = res.ok; out.shell = await res.json();
  res = await post("execute", { code: "console.log(process.version.startsWith('v'))",
                                runtime: "node" });
  out.execOk = res.ok; out.exec = await res.json();
  res = await post("execute", { code: "print(sum(range(10)))", runtime: "python" });
  out.pyOk = res.ok; out.py = await res.json();
  const data = Buffer.from([0, 1, 2, 250, 251, 252, 255]);
  res = await post("upload", { data: data.toString("base64"), path: "node/data.bin" });
  out.uploadOk = res.ok;
  res = await fetch(`${gw}/v1/sandbox/${id}/download?path=${encodeURIComponent("node/data.bin")}`);
  out.downloadOk = res.ok;
  out.roundTrip = Buffer.from(await res.arrayBuffer()).equals(data);
  res = await fetch(`${gw}/v1/sandbox/${id}`, { method: "DELETE" });
  out.deleteOk = res.ok;
}
main().then(() => console.log(JSON.stringify(out)),
            (e) => { console.log(JSON.stringify({ error: String(e), ...out })); });
"""


def test_real_node_fetch_session(forged, client):
    with tempfile.NamedTemporaryFile("w", suffix=".mjs", delete=False) as f:
        f.write(NODE_CLIENT)
        script = f.name
    try:
        p = subprocess.run(["node", script, forged.url], capture_output=True, text=True,
                           timeout=120)
    finally:
        os.unlink(script)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert "error" not in out, out
    assert 200 <= out["createStatus"] < 300 and ID_RE.match(out["id"])
    assert out["shellOk"] and out["shell"]["stdout"] == "from-node\n/root\n"
    assert out["shell"]["success"] is True and out["shell"]["exitCode"] == 0
    assert out["execOk"] and out["exec"]["stdout"] == "true\n"
    assert out["pyOk"] and out["py"]["stdout"] == "45\n"
    assert out["uploadOk"] and out["downloadOk"] and out["roundTrip"]
    assert out["deleteOk"]
    assert out["id"] not in client.list_ids()
