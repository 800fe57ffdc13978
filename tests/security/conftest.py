"""Fixtures of the security battery (SECURITY.md "The battery").

The daemon fixtures are tests/integration's (`forged`, `client`, `host_token`, and the
hook that attaches forged's log to failing tests): that conftest is loaded here under its
own module name, since pytest imports every conftest.py as "conftest".

    probe       session: the static probe binary's bytes (built with make if missing)
    neighbour   module, autouse: a sandbox made when the module starts, with a marker
                file and a background process; every case checks it still works
    sec         function: a Battery (secutil.py): .new(spec) makes the sandbox under
                test, .probe(sb, ...) runs the probe in it, .finish() checks the
                post-conditions every case ends with
"""

import importlib.util
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.join(os.path.dirname(HERE), "integration")
for p in (INTEGRATION, HERE):
    if p not in sys.path:
        sys.path.insert(0, p)


def _load_integration_conftest():
    name = "forge_it_conftest"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(INTEGRATION, "conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


_it = _load_integration_conftest()
forged = _it.forged
client = _it.client
host_token = _it.host_token
pytest_runtest_makereport = _it.pytest_runtest_makereport

import secutil  # noqa: E402  (needs the sys.path above)


def _probe_path():
    return os.path.join(str(_it.build_dir()), "tests", "security", "probe")


def _probe_is_stale(path):
    if not os.path.exists(path):
        return True
    built = os.path.getmtime(path)
    src = os.path.join(HERE, "probe")
    return any(os.path.getmtime(os.path.join(src, f)) > built for f in os.listdir(src))


@pytest.fixture(scope="session")
def probe():
    """The probe's bytes. `make integration` builds it; a bare pytest run builds it here
    with the same Makefile rule (B= names the build directory in use)."""
    path = _probe_path()
    if _probe_is_stale(path):
        build = str(_it.build_dir())
        r = subprocess.run(["make", "-s", "-C", str(_it.REPO), "B=" + build, path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            pytest.fail("cannot build the probe (%s):\n%s" % (path, r.stdout.decode("utf-8", "replace")),
                        pytrace=False)
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module", autouse=True)
def neighbour(forged):
    nb = secutil.Neighbour(forged)
    yield nb
    nb.destroy()


@pytest.fixture
def sec(forged, neighbour, probe):
    bat = secutil.Battery(forged, neighbour, probe)
    yield bat
    bat.cleanup()
