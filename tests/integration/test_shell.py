"""POST /v1/sandboxes/{id}/shell (docs/api.md "Commands")."""

import re
import threading
import time

from forge_client import (MiB, PS_SNIPPET, check_error, check_result, host_pids_matching,
                          wait_until)


def _procs(sb):
    return sb.sh(PS_SNIPPET)


def test_result_shape_success(sandbox):
    res = sandbox.shell("echo hello")
    check_result(res)
    assert res["success"] is True
    assert res["stdout"] == "hello\n" and res["stderr"] == ""
    assert res["exitCode"] == 0 and res["exit_code"] == 0
    assert res["timedOut"] is False and res["truncated"] is False
    assert res["oomKilled"] is False and res["signal"] is None


def test_stdout_stderr_exit_code(sandbox):
    res = sandbox.shell("echo out; echo err >&2; exit 3")
    assert res["stdout"] == "out\n" and res["stderr"] == "err\n"
    assert res["exitCode"] == 3 and res["exit_code"] == 3
    assert res["success"] is False and res["signal"] is None


def test_runs_sh_c(sandbox):
    """Pipes, redirections, && and || are interpreted by /bin/sh."""
    res = sandbox.shell("printf 'b\\na\\n' | sort | tr a-z A-Z && false || echo fallback")
    assert res["stdout"] == "A\nB\nfallback\n" and res["exitCode"] == 0


def test_execution_time(sandbox):
    res = sandbox.shell("sleep 0.4")
    assert 300 <= res["executionTime"] < 10000, res
    assert res["executionTime"] == res["execution_time_ms"]


def test_stdin(sandbox):
    res = sandbox.shell("cat; echo; wc -l", stdin="hello\nworld\n")
    assert res["stdout"].startswith("hello\nworld\n")
    res = sandbox.shell("tr a-z A-Z", stdin="shout ✓")
    assert res["stdout"] == "SHOUT ✓"


def test_no_stdin_does_not_block(sandbox):
    """Without "stdin", reading stdin sees EOF at once instead of hanging."""
    t0 = time.monotonic()
    res = sandbox.shell("cat; echo eof", timeout_ms=10000)
    assert res["timedOut"] is False and res["stdout"] == "eof\n"
    assert time.monotonic() - t0 < 8


def test_env_and_cwd_per_call(sandbox):
    res = sandbox.shell('echo "$FOO:$BAR"; pwd', env={"FOO": "foo value", "BAR": "b=c"},
                        cwd="/tmp")
    assert res["stdout"] == "foo value:b=c\n/tmp\n"
    # not sticky: next call has the sandbox's defaults
    assert sandbox.sh('echo "${FOO-unset}"; pwd') == "unset\n/root\n"


def test_cd_does_not_persist(sandbox):
    assert sandbox.sh("cd /tmp && pwd") == "/tmp\n"
    assert sandbox.sh("pwd") == "/root\n"


def test_heredoc_relative_path_persists(sandbox):
    text = 'line one with $HOME `uname` and "quotes"\n\ttabbed \\ backslash\n'
    res = sandbox.shell("mkdir -p notes && cat > notes/hello.txt <<'SANDBOX_EOF'\n"
                        + text + "SANDBOX_EOF")
    assert res["exitCode"] == 0, res
    assert sandbox.sh("cat notes/hello.txt") == text
    assert sandbox.sh("cat /root/notes/hello.txt") == text
    assert sandbox.download("notes/hello.txt") == text.encode()


def test_files_persist_across_calls(sandbox):
    sandbox.sh("echo 1 > counter")
    for i in range(2, 5):
        sandbox.sh("echo $(( $(cat counter) + 1 )) > counter")
    assert sandbox.sh("cat counter") == "4\n"


def test_timeout_kills_whole_tree(sandbox):
    t0 = time.monotonic()
    res = sandbox.shell("sleep 4242.5 & echo started; sleep 30", timeout_ms=1000)
    elapsed = time.monotonic() - t0
    assert elapsed < 10, elapsed
    assert res["timedOut"] is True
    assert res["exitCode"] == 124 and res["exit_code"] == 124
    assert res["success"] is False
    assert res["stdout"] == "started\n"
    assert wait_until(lambda: "sleep 4242.5" not in _procs(sandbox), timeout=5), \
        _procs(sandbox)
    assert wait_until(lambda: not host_pids_matching("sleep 4242.5"), timeout=5)


def test_timeout_kills_process_ignoring_sigterm(sandbox):
    t0 = time.monotonic()
    res = sandbox.shell("trap '' TERM; (trap '' TERM; sleep 4343.5) & sleep 30",
                        timeout_ms=1000)
    assert time.monotonic() - t0 < 15
    assert res["timedOut"] is True and res["exitCode"] == 124
    assert wait_until(lambda: "sleep 4343.5" not in _procs(sandbox), timeout=8)


def test_killed_by_signal(sandbox):
    res = sandbox.shell("kill -9 $$")
    assert res["signal"] == "SIGKILL"
    assert res["exitCode"] == 137 and res["exit_code"] == 137
    assert res["success"] is False and res["timedOut"] is False
    res = sandbox.shell("kill -TERM $$")
    assert res["signal"] == "SIGTERM" and res["exitCode"] == 143


def test_output_truncated_at_1mib(sandbox):
    res = sandbox.shell("head -c 3000000 /dev/zero | tr '\\0' a; "
                        "head -c 2000000 /dev/zero | tr '\\0' b >&2; echo done >&2")
    assert res["truncated"] is True
    out = res["stdout"].encode()
    err = res["stderr"].encode()
    assert MiB - 4 <= len(out) <= MiB, len(out)
    assert set(out) == {ord("a")}
    assert len(err) <= MiB and err.startswith(b"bbbb")
    # the process kept running to the end
    assert res["exitCode"] == 0 and res["timedOut"] is False


def test_output_just_under_limit_not_truncated(sandbox):
    res = sandbox.shell("head -c 1000000 /dev/zero | tr '\\0' z")
    assert res["truncated"] is False
    assert res["stdout"] == "z" * 1000000


def test_endless_output_with_timeout(sandbox, client):
    res = sandbox.shell("yes forge", timeout_ms=2000)
    assert res["timedOut"] is True and res["truncated"] is True
    assert len(res["stdout"].encode()) <= MiB
    assert res["stdout"].startswith("forge\nforge\n")
    assert client.health().status == 200


def test_invalid_utf8_replaced(sandbox):
    res = sandbox.shell("printf 'a\\377b\\n'; printf 'c\\300d' >&2")
    assert res["stdout"] == "a\ufffdb\n"
    assert res["stderr"].startswith("c\ufffd") and res["stderr"].endswith("d")


def test_valid_utf8_kept(sandbox):
    assert sandbox.sh("printf 'h\\303\\251llo \\342\\234\\223 \\360\\237\\230\\200'") \
        == "héllo ✓ 😀"


def test_background_process_does_not_block(sandbox):
    t0 = time.monotonic()
    res = sandbox.shell("sleep 300 & echo bg", timeout_ms=20000)
    elapsed = time.monotonic() - t0
    assert res["stdout"] == "bg\n" and res["exitCode"] == 0
    assert res["timedOut"] is False
    assert elapsed < 10, elapsed
    # and it keeps running after the call returned
    procs = _procs(sandbox)
    assert "sleep 300" in procs, procs
    pids = [ln.split()[0] for ln in procs.splitlines() if ln.split()[1:] == ["sleep", "300"]]
    sandbox.sh("kill %s" % " ".join(pids))


def test_concurrent_calls(sandbox):
    """Commands in one sandbox run side by side, not one after the other."""
    results = []

    def run(i):
        results.append(sandbox.shell("sleep 1; echo %d" % i))

    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert time.monotonic() - t0 < 3.5
    assert sorted(r["stdout"] for r in results) == ["0\n", "1\n", "2\n", "3\n"]


def test_memory_limit_oom(make_sandbox, client):
    sb = make_sandbox({"limits": {"memory_mb": 64}})
    res = sb.shell("python3 -c 'a = b\"x\" * (1 << 30); print(len(a))'", timeout_ms=60000)
    assert res["oomKilled"] is True, res
    assert res["success"] is False and res["exitCode"] != 0
    assert "1073741824" not in res["stdout"]
    assert client.health().status == 200
    # the sandbox survives its command's OOM
    assert sb.sh("echo alive") == "alive\n"


def test_pids_limit(make_sandbox, client):
    sb = make_sandbox({"limits": {"pids": 32}})
    res = sb.shell("for i in $(seq 1 200); do sleep 3 & done; wait; echo finished",
                   timeout_ms=30000)
    assert re.search(r"fork|resource temporarily unavailable", res["stderr"], re.I), res
    assert client.health().status == 200
    # once the sleeps are gone the sandbox works again
    def ok():
        r = sb.shell_raw({"command": "echo ok", "timeout_ms": 5000})
        return r.status == 200 and r.json()["stdout"] == "ok\n"
    assert wait_until(ok, timeout=20, interval=0.5)


def test_missing_command_refused(sandbox):
    check_error(sandbox.shell_raw({}), 400, "invalid_request")
    check_error(sandbox.shell_raw({"command": 5}), 400, "invalid_request")
