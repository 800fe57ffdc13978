"""POST /v1/sandboxes/{id}/execute (docs/api.md "Commands")."""

import time

from forge_client import check_error, check_result, stable_list


def test_python_print(sandbox):
    res = sandbox.execute("print('hello from python')", "python")
    check_result(res)
    assert res["stdout"] == "hello from python\n"
    assert res["success"] is True and res["exitCode"] == 0 and res["stderr"] == ""


def test_python_multiline_and_unicode(sandbox):
    code = "import sys\nfor i in range(3):\n    print(i, 'ü✓')\nprint(sys.version_info[0])\n"
    res = sandbox.execute(code, "python")
    assert res["stdout"] == "0 ü✓\n1 ü✓\n2 ü✓\n3\n"


def test_python_exit_code(sandbox):
    res = sandbox.execute("import sys\nprint('before')\nsys.exit(3)", "python")
    assert res["exitCode"] == 3 and res["exit_code"] == 3
    assert res["success"] is False and res["stdout"] == "before\n"


def test_python_exception(sandbox):
    res = sandbox.execute("def f():\n    raise ValueError('boom')\nf()\n", "python")
    assert res["exitCode"] != 0 and res["success"] is False
    assert "Traceback (most recent call last)" in res["stderr"]
    assert "ValueError: boom" in res["stderr"]


def test_node(sandbox):
    res = sandbox.execute("const a = [1, 2, 3];\nconsole.log(a.map(x => x * 2).join(','));",
                          "node")
    assert res["stdout"] == "2,4,6\n" and res["exitCode"] == 0 and res["success"] is True


def test_node_exit_code_and_error(sandbox):
    res = sandbox.execute("console.error('err'); process.exit(4)", "node")
    assert res["exitCode"] == 4 and res["stderr"] == "err\n" and res["success"] is False
    res = sandbox.execute("throw new Error('kaboom')", "node")
    assert res["exitCode"] != 0 and "kaboom" in res["stderr"]


def test_sh(sandbox):
    res = sandbox.execute("x=6\necho $((x * 7))\necho err >&2\nexit 5", "sh")
    assert res["stdout"] == "42\n" and res["stderr"] == "err\n" and res["exitCode"] == 5


def test_bash(sandbox):
    res = sandbox.execute('a=(one two three)\necho "${#a[@]} ${a[1]}"\n[[ -n $BASH_VERSION ]] '
                          '&& echo bash', "bash")
    assert res["stdout"] == "3 two\nbash\n" and res["exitCode"] == 0


def test_language_alias(sandbox):
    r = sandbox.execute_raw({"code": "print(2 ** 10)", "language": "python"})
    assert r.status == 200, r.describe()
    res = check_result(r.json())
    assert res["stdout"] == "1024\n"
    r = sandbox.execute_raw({"code": "console.log(typeof require)", "language": "node"})
    assert r.status == 200 and r.json()["stdout"] == "function\n"


def test_code_bigger_than_arg_max(sandbox):
    payload = "a" * (3 * 1000 * 1000)
    code = "# padding\ns = '%s'\nprint(len(s), s[:3])\n" % payload
    res = sandbox.execute(code, "python", timeout_ms=60000)
    assert res["stdout"] == "3000000 aaa\n", res["stderr"][-2000:]
    assert res["exitCode"] == 0


def test_stdin_env_cwd(sandbox):
    code = ("import os, sys\ndata = sys.stdin.read()\n"
            "print(data.upper(), os.environ['X_VAR'], os.getcwd())\n")
    res = sandbox.execute(code, "python", stdin="abc", env={"X_VAR": "xv"}, cwd="/tmp")
    assert res["stdout"] == "ABC xv /tmp\n"


def test_default_cwd(sandbox):
    res = sandbox.execute("import os; print(os.getcwd())", "python")
    assert res["stdout"] == "/root\n"


def test_timeout(sandbox):
    t0 = time.monotonic()
    res = sandbox.execute("import time\nprint('start', flush=True)\ntime.sleep(60)", "python",
                          timeout_ms=1000)
    assert time.monotonic() - t0 < 10
    assert res["timedOut"] is True and res["exitCode"] == 124
    assert res["stdout"] == "start\n"


def test_unsupported_runtime(sandbox, client):
    before = stable_list(client)
    for rt in ("cobol", "python2.4", "../../bin/sh"):
        check_error(sandbox.execute_raw({"code": "x", "runtime": rt}), 400,
                    "unsupported_runtime")
    check_error(sandbox.execute_raw({"code": "x", "language": "brainfuck"}), 400,
                "unsupported_runtime")
    assert stable_list(client) == before


def test_missing_code(sandbox):
    check_error(sandbox.execute_raw({"runtime": "python"}), 400, "invalid_request")
    check_error(sandbox.execute_raw({"code": 1, "runtime": "python"}), 400, "invalid_request")


def test_runtime_name_aliases(sandbox):
    """Names other clients use: SandboX's "shell", "python3", "javascript"."""
    assert sandbox.execute("echo $((6 * 7))", "shell")["stdout"] == "42\n"
    assert sandbox.execute("import sys; print(sys.version_info[0])", "python3")["stdout"] == "3\n"
    assert sandbox.execute("console.log([1, 2].length)", "javascript")["stdout"] == "2\n"
