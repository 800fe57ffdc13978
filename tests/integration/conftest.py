"""Fixtures that run a real forged for the integration tests.

    forged          module scope: one forged per test file (free port, temporary state dir)
    forged_fn       function scope: a private forged, for restart / kill -9 tests
    forged_factory  function scope: callable(extra_args=()) -> Forged, for odd flags
    client          module scope: ForgeClient bound to `forged`
    sandbox         module scope: one sandbox on `forged`, destroyed after the module
    make_sandbox    function scope: callable(spec=None) -> Sandbox on `forged`, destroyed
                    after the test

A Forged has .url .port .state_dir .bin_dir .proc .log_path .client and methods
.kill9(), .stop(), .restart() (start again on the same state dir and port), .alive().
The binary is $FORGE_BUILD/bin/forged, FORGE_BUILD defaulting to "build" relative to
the repository root. forged's stdout+stderr go to a log file whose tail is attached to
the report of every failing test (set FORGE_KEEP_LOGS=1 to keep the log files).

Teardown destroys every sandbox through the API before stopping forged (sandboxes
outlive forged by design, so stopping forged alone would leak them), then removes the
state dir without crossing into other filesystems.
"""

import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from forge_client import ForgeClient  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 20.0
# An environment variable forged gets from us; no sandbox may ever see it (SECURITY P5).
HOST_TOKEN_VAR = "FORGE_TEST_HOST_TOKEN"
HOST_TOKEN = "host-secret-" + secrets.token_hex(8)

_LIVE = []  # every Forged started and not yet torn down, for failure reports


def build_dir():
    p = Path(os.environ.get("FORGE_BUILD", "build"))
    return p if p.is_absolute() else REPO / p


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mount_points_under(prefix):
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].replace("\\040", " ")
                if mp == prefix or mp.startswith(prefix + "/"):
                    out.append(mp)
    except OSError:
        pass
    return out


def safe_rmtree(root):
    """rm -rf that never crosses into another filesystem (a leaked bind or overlay
    mount under the state dir must not make us delete host files)."""
    root = os.path.abspath(root)
    if not os.path.lexists(root):
        return
    for mp in sorted(_mount_points_under(root), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    dev = os.lstat(root).st_dev

    def rm(path):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if st.st_dev != dev:
                print("safe_rmtree: not crossing into mount %s" % path, file=sys.stderr)
                return
            try:
                os.chmod(path, 0o700)
                entries = os.listdir(path)
            except OSError:
                entries = []
            for e in entries:
                rm(os.path.join(path, e))
            try:
                os.rmdir(path)
            except OSError:
                pass
        else:
            try:
                os.unlink(path)
            except OSError:
                pass

    rm(root)


class Forged:
    def __init__(self, state_dir, port, log_path, extra_args=()):
        self.state_dir = str(state_dir)
        self.port = port
        self.url = "http://127.0.0.1:%d" % port
        self.bin_dir = str(build_dir() / "bin")
        self.binary = os.path.join(self.bin_dir, "forged")
        self.log_path = str(log_path)
        self.extra_args = list(extra_args)
        self.client = ForgeClient(self.url)
        self.proc = None
        self.starts = 0

    def argv(self):
        return [self.binary, "--listen", "127.0.0.1:%d" % self.port, "--state-dir",
                self.state_dir, "--isolator", "ns", "--log-level", "debug"] + self.extra_args

    def start(self):
        if not os.access(self.binary, os.X_OK):
            pytest.fail("forged binary not found at %s (build it with `make`, or set "
                        "FORGE_BUILD)" % self.binary, pytrace=False)
        env = dict(os.environ)
        env[HOST_TOKEN_VAR] = HOST_TOKEN
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(("\n===== start #%d: %s\n" % (self.starts, " ".join(self.argv())))
                      .encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, env=env, cwd=str(REPO),
                                         start_new_session=True)
        self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("forged exited with %s before answering /health\n%s"
                            % (self.proc.returncode, self.log_tail()), pytrace=False)
            try:
                r = self.client.health(timeout=2.0)
                if r.status == 200:
                    return
                last = r.describe()
            except OSError as e:
                last = repr(e)
            time.sleep(0.05)
        pytest.fail("forged not ready within %ss (last: %s)\n%s"
                    % (timeout, last, self.log_tail()), pytrace=False)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        """SIGKILL forged (not its sandboxes) and reap it."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self, timeout=15.0):
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit status."""
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def restart(self):
        """Start again on the same state dir and port (stopping it first if alive)."""
        if self.alive():
            self.stop()
        return self.start()

    def log_tail(self, limit=64 * 1024):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - limit))
                return f.read().decode("utf-8", "replace")
        except OSError as e:
            return "(no log: %s)" % e

    def destroy_all_sandboxes(self):
        try:
            ids = self.client.list_ids()
        except Exception as e:  # noqa: BLE001 - teardown must go on
            print("teardown: cannot list sandboxes: %r" % e, file=sys.stderr)
            return
        for sid in ids:
            try:
                self.client.delete(sid)
            except Exception as e:  # noqa: BLE001
                print("teardown: DELETE %s: %r" % (sid, e), file=sys.stderr)

    def teardown(self):
        try:
            if not self.alive():
                # A test killed it: bring it back so its sandboxes can be destroyed.
                try:
                    self.start()
                except BaseException as e:  # noqa: BLE001 - pytest.fail is BaseException
                    print("teardown: restart failed: %r" % e, file=sys.stderr)
            if self.alive():
                self.destroy_all_sandboxes()
            self.stop()
        finally:
            safe_rmtree(self.state_dir)


def _new_forged(extra_args=()):
    state = tempfile.mkdtemp(prefix="forge-it-state-", dir="/tmp")
    fd, log = tempfile.mkstemp(prefix="forged-", suffix=".log", dir="/tmp")
    os.close(fd)
    f = Forged(state, free_port(), log, extra_args)
    _LIVE.append(f)
    try:
        f.start()
    except BaseException:
        _finish(f)
        raise
    return f


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def _check_clean_exit(f):
    """forged must stop cleanly on SIGTERM, and a sanitizer build must report nothing."""
    log = f.log_tail(limit=1 << 20)
    marks = [m for m in SANITIZER_MARKS if m in log]
    if marks:
        pytest.fail("forged's log has sanitizer reports (%s)\n%s" % (", ".join(marks), log[-20000:]),
                    pytrace=False)
    if f.proc is not None and f.proc.returncode not in (0, -signal.SIGKILL):
        pytest.fail("forged exited with %s on SIGTERM\n%s" % (f.proc.returncode, log[-8000:]),
                    pytrace=False)


def _finish(f):
    try:
        f.teardown()
        _check_clean_exit(f)
    finally:
        if f in _LIVE:
            _LIVE.remove(f)
        if not os.environ.get("FORGE_KEEP_LOGS"):
            try:
                os.unlink(f.log_path)
            except OSError:
                pass


@pytest.fixture(scope="module")
def forged():
    f = _new_forged()
    yield f
    _finish(f)


@pytest.fixture
def forged_fn():
    f = _new_forged()
    yield f
    _finish(f)


@pytest.fixture
def forged_factory():
    made = []

    def make(extra_args=()):
        f = _new_forged(extra_args)
        made.append(f)
        return f

    yield make
    for f in made:
        _finish(f)


@pytest.fixture(scope="module")
def client(forged):
    return forged.client


@pytest.fixture(scope="module")
def sandbox(forged):
    sb = forged.client.create()
    yield sb
    forged.client.delete(sb.id)


@pytest.fixture
def make_sandbox(forged):
    made = []

    def make(spec=None, client=None):
        sb = (client or forged.client).create(spec)
        made.append(sb)
        return sb

    yield make
    for sb in made:
        try:
            sb.client.delete(sb.id)
        except OSError:
            pass


@pytest.fixture(scope="session")
def host_token():
    return HOST_TOKEN


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for f in list(_LIVE):
            rep.sections.append(("forged log (%s, port %d)" % (f.log_path, f.port),
                                 f.log_tail()))
