"""Images (docs/images.md): the registry, building from recipes with progress as
Server-Sent Events, sandboxes from built images, import of rootfs tarballs and its
refusal of hostile ones (SECURITY.md A1-A7), removal refused while in use.

Builds really run debootstrap against the mirror in the host's apt sources; the package
cache (/var/cache/forge/debs) makes every build after the first download nothing.
test_build_python_and_node is the slow one (two more builds, each a copy of base plus
apt-get)."""

import io
import json
import os
import subprocess
import tarfile
import tempfile
import time

import pytest

from forge_client import check_error, request
from test_qemu import BOOT_TIMEOUT, guest_kernel_version, guest_parts, link_guest_parts  # noqa: F401 (a fixture)

HOSTILE_VICTIM = "/tmp/forge-import-victim"
# dpkg's force-unsafe-io, in a root only while it is being built
BUILD_DPKG_CFG = "etc/dpkg/dpkg.cfg.d/zz-forge-build"


def sse_events(client, method, path, timeout=900):
    """-> (status, [(event, parsed data)]) of a Server-Sent Events answer."""
    import http.client
    conn = http.client.HTTPConnection(client.host, client.port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read().decode()
        if resp.status != 200:
            return resp.status, json.loads(body)
        events = []
        for block in body.split("\n\n"):
            ev, data = "message", None
            for line in block.split("\n"):
                if line.startswith("event: "):
                    ev = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
            if data is not None:
                events.append((ev, data))
        return resp.status, events
    finally:
        conn.close()


def build(client, name):
    t0 = time.monotonic()
    status, events = sse_events(client, "POST", "/v1/images/%s/build" % name)
    took = time.monotonic() - t0
    assert status == 200, events
    assert events and events[-1][0] == "done", events[-5:]
    print("\nbuilding %s took %.1f s" % (name, took))
    return events, took


def images(client):
    r = client.request("GET", "/v1/images")
    assert r.status == 200, r.describe()
    return {i["name"]: i for i in r.json()["images"]}


def import_tar(client, name, data, query=""):
    return client.request("PUT", "/v1/images/%s%s" % (name, query), data,
                          headers={"Content-Type": "application/x-tar"})


def no_leftovers(forged, timeout=0):
    """No .new- or .old- directory (a removal deletes its .old- one in the background:
    timeout waits for that)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [n for n in os.listdir(os.path.join(forged.state_dir, "images")) if n.startswith(".")]
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    assert left == [], left


# ---- the registry and its errors ----

def test_host_image_is_listed(client):
    host = images(client)["host"]
    assert host["runtimes"]["sh"] == "sh"
    assert host["workdir"] == "/root"
    r = client.request("GET", "/v1/images/host")
    assert r.status == 200 and r.json()["name"] == "host"


@pytest.mark.parametrize("method,path,status,code", [
    ("POST", "/v1/images/nosuchrecipe/build", 404, "recipe_not_found"),
    ("POST", "/v1/images/host/build", 400, "invalid_request"),
    ("POST", "/v1/images/Bad_Name/build", 400, "invalid_request"),
    ("POST", "/v1/images/.hidden/build", 400, "invalid_request"),
    ("POST", "/v1/images/" + "a" * 64 + "/build", 400, "invalid_request"),
    ("GET", "/v1/images/nosuch", 404, "image_not_found"),
    ("DELETE", "/v1/images/nosuch", 404, "image_not_found"),
    ("DELETE", "/v1/images/host", 400, "invalid_request"),
    ("PUT", "/v1/images/host", 400, "invalid_request"),
    ("GET", "/v1/images/x/build", 405, "method_not_allowed"),
])
def test_image_errors(forged, client, method, path, status, code):
    check_error(client.request(method, path), status, code)
    no_leftovers(forged)


def test_create_with_unknown_image(client):
    check_error(client.request("POST", "/v1/sandboxes", {"image": "nosuch"}), 404, "image_not_found")


# ---- building base, and sandboxes from it ----

@pytest.fixture(scope="module")
def base_image(forged, client):
    events, took = build(client, "base")
    return events, took


def test_build_base_reports_progress(base_image):
    events, _ = base_image
    phases = [d["phase"] for e, d in events if e == "progress"]
    for p in ("sources", "resolve", "extract", "install", "finish"):
        assert p in phases, phases
    assert {d["image"] for e, d in events if e == "progress"} == {"base"}
    sizes = [d["bytes"] for e, d in events if e == "progress"]
    assert max(sizes) > 50 * 1024 * 1024, sizes[-5:]
    done = events[-1][1]
    assert done["name"] == "base"
    assert done["runtimes"] == {"sh": "sh", "bash": "bash"}
    assert done["shell"] == "/bin/bash" and done["user"] == "root" and done["workdir"] == "/root"
    assert 50 * 1024 * 1024 < done["size"] < 600 * 1024 * 1024, done
    assert isinstance(done["created"], str)


def test_base_is_listed_and_cleaned(forged, client, base_image):
    assert "base" in images(client)
    root = os.path.join(forged.state_dir, "images", "base", "rootfs")
    assert [f for f in os.listdir(os.path.join(root, "var/cache/apt/archives")) if f.endswith(".deb")] == []
    assert [f for f in os.listdir(os.path.join(root, "var/lib/apt/lists")) if f.endswith("Packages")] == []
    assert not os.path.lexists(os.path.join(root, BUILD_DPKG_CFG))
    assert os.path.isdir(os.path.join(root, "etc/dpkg/dpkg.cfg.d"))
    no_leftovers(forged)


def test_build_again_is_refused(client, base_image):
    check_error(client.request("POST", "/v1/images/base/build"), 409, "image_exists")


def test_sandbox_from_base_is_debian_not_the_host(forged, client, base_image, make_sandbox):
    sb = make_sandbox({"image": "base"})
    assert sb.info["image"] == "base"
    assert "Debian GNU/Linux 12" in sb.sh("cat /etc/os-release")
    # The host has python3 and forged's libraries; the base image has neither.
    assert sb.shell("command -v python3")["exitCode"] != 0
    assert sb.shell("ls /usr/lib/x86_64-linux-gnu/libuv*")["exitCode"] != 0
    assert "/usr" not in [l.split()[4] for l in sb.sh("cat /proc/self/mountinfo").splitlines()]
    assert sb.sh("bash -c 'echo $BASH_VERSION'").startswith("5.")
    assert sb.sh("pwd").strip() == "/root"
    # Writes land in the sandbox's own layer, never in the shared image.
    sb.sh("echo mine > /etc/written-by-sandbox && rm /usr/bin/tail")
    root = os.path.join(forged.state_dir, "images", "base", "rootfs")
    assert not os.path.exists(os.path.join(root, "etc/written-by-sandbox"))
    assert os.path.exists(os.path.join(root, "usr/bin/tail"))
    # Not copied per sandbox: the sandbox's directory holds only what it wrote.
    out = subprocess.run(["du", "-s", "--block-size=1", os.path.join(forged.state_dir, "sandboxes", sb.id)],
                         capture_output=True, text=True, check=True).stdout
    assert int(out.split()[0]) < 5 * 1024 * 1024, out


def test_execute_in_base(base_image, make_sandbox):
    sb = make_sandbox({"image": "base"})
    res = sb.execute("echo $((6*7))", runtime="bash")
    assert res["stdout"] == "42\n", res
    r = sb.execute_raw({"code": "print(1)", "runtime": "python"})
    check_error(r, 400, "unsupported_runtime")


def test_remove_refused_while_in_use(forged, client, base_image):
    r = client.request("POST", "/v1/sandboxes", {"image": "base"})
    assert r.status == 201, r.describe()
    sid = r.json()["id"]
    doc = check_error(client.request("DELETE", "/v1/images/base"), 409, "image_in_use")
    assert sid in doc["error"]
    assert "base" in images(client)
    assert client.delete(sid).status == 204


def test_vm_on_built_images(forged, client, base_image, guest_parts):
    """A qemu sandbox runs on a built image (Debian's base) and on an imported one, each
    as a read-only disk made of its rootfs; removing an image removes its disk."""
    vm_dir = link_guest_parts(forged.state_dir, guest_parts)
    r = import_tar(client, "vmtiny", minimal_rootfs())
    assert r.status == 201, r.describe()
    kernel = guest_kernel_version(guest_parts)
    for image, command, expect in (
            ("base", ". /etc/os-release; echo $ID $VERSION_ID; uname -r; command -v python3 || echo none",
             "debian 12\n%s\nnone\n" % kernel),
            ("vmtiny", "read v < /proc/sys/kernel/osrelease; echo $v; test -e /etc/os-release || echo only dash",
             "%s\nonly dash\n" % kernel)):
        sb = client.create({"isolator": "qemu", "image": image}, timeout=BOOT_TIMEOUT)
        try:
            assert sb.info["image"] == image and sb.info["isolator"] == "qemu"
            assert sb.sh(command) == expect
        finally:
            assert client.delete(sb.id).status == 204
        assert os.path.isfile(os.path.join(vm_dir, "images", image + ".ext4"))
    assert client.request("DELETE", "/v1/images/vmtiny").status == 204
    assert not os.path.exists(os.path.join(vm_dir, "images", "vmtiny.ext4"))
    assert os.path.isfile(os.path.join(vm_dir, "images", "base.ext4"))


def test_remove_refused_while_a_snapshot_uses_it(forged, client, make_sandbox):
    """A snapshot starts sandboxes on its image: the image stays while the snapshot does."""
    r = import_tar(client, "snapped", minimal_rootfs())
    assert r.status == 201, r.describe()
    sb = make_sandbox({"image": "snapped"})
    sb.sh("echo kept > /root/k")
    r = sb.req("POST", "/snapshot")
    assert r.status == 201, r.describe()
    snap = r.json()["id"]
    assert r.json()["image"] == "snapped"
    assert client.delete(sb.id).status == 204  # no sandbox uses the image now
    doc = check_error(client.request("DELETE", "/v1/images/snapped"), 409, "image_in_use")
    assert snap in doc["error"], doc
    assert "snapped" in images(client)
    c = make_sandbox({"from_snapshot": snap})
    assert c.info["image"] == "snapped" and c.sh("read line < /root/k; echo $line") == "kept\n"
    assert client.delete(c.id).status == 204
    assert client.request("DELETE", "/v1/snapshots/%s" % snap).status == 204
    assert client.request("DELETE", "/v1/images/snapped").status == 204
    assert "snapped" not in images(client)
    no_leftovers(forged, timeout=30)


# ---- import ----

def tar_bytes(entries, compress=""):
    """entries: list of (TarInfo fields dict, data bytes or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w" + (":" + compress if compress else "")) as t:
        for fields, data in entries:
            ti = tarfile.TarInfo(fields.pop("name"))
            for k, v in fields.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    return buf.getvalue()


def f(name, data=b"x", mode=0o644, **kw):
    return (dict(name=name, mode=mode, **kw), data)


def d(name, mode=0o755):
    return (dict(name=name, type=tarfile.DIRTYPE, mode=mode), None)


def sym(name, target):
    return (dict(name=name, type=tarfile.SYMTYPE, linkname=target), None)


def hard(name, target):
    return (dict(name=name, type=tarfile.LNKTYPE, linkname=target), None)


def minimal_rootfs(compress=""):
    """dash with its libraries: enough for /bin/sh inside a sandbox."""
    entries = [d("bin"), d("etc"), d("root", 0o700), d("tmp", 0o1777),
               f("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")]
    libs = subprocess.run(["ldd", "/usr/bin/dash"], capture_output=True, text=True, check=True).stdout
    with open("/usr/bin/dash", "rb") as fh:
        entries.append(f("bin/sh", fh.read(), 0o755))
    for line in libs.splitlines():
        path = line.split("=>")[-1].split("(")[0].strip()
        if path.startswith("/"):
            with open(path, "rb") as fh:
                entries.append(f(path.lstrip("/"), fh.read(), 0o755))
    return tar_bytes(entries, compress)


@pytest.fixture
def victim():
    os.makedirs(HOSTILE_VICTIM, exist_ok=True)
    with open(os.path.join(HOSTILE_VICTIM, "keep"), "w") as fh:
        fh.write("untouched\n")
    before = snapshot(HOSTILE_VICTIM)
    yield HOSTILE_VICTIM
    assert snapshot(HOSTILE_VICTIM) == before, "the import touched a path outside its image"
    subprocess.run(["rm", "-rf", HOSTILE_VICTIM], check=True)


def snapshot(path):
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


V = HOSTILE_VICTIM
HOSTILE = {
    "A1-dotdot": [f("../../../../../../" + V.lstrip("/") + "/evil")],
    "A1-dotdot-inner": [d("a"), f("a/../../" + V.lstrip("/") + "/evil")],
    "A1-absolute": [f(V + "/evil")],
    "A2-symlink-out-then-file": [sym("escape", V), f("escape/evil")],
    "A2-symlink-dotdot-then-file": [sym("up", "../../../../../../.."), f("up" + V + "/evil")],
    "A2-symlink-to-root-then-file": [sym("self", "."), f("self/evil")],
    "A2-symlink-dir-then-nested": [d("d"), sym("d/link", V), f("d/link/x/evil")],
    "A3-hardlink-outside": [hard("evil", V + "/keep")],
    "A3-hardlink-dotdot": [hard("evil", "../../../../../.." + V + "/keep")],
    "A3-hardlink-through-symlink": [sym("s", V), hard("evil", "s/keep")],
    "A4-chardev": [(dict(name="dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3), None)],
    "A4-blockdev": [(dict(name="sda", type=tarfile.BLKTYPE, devmajor=8, devminor=0), None)],
    "A4-fifo": [(dict(name="fifo", type=tarfile.FIFOTYPE), None)],
    "A7-dir-then-file": [d("x"), f("x/inner"), f("x")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_import_hostile_refused(forged, client, victim, case):
    data = tar_bytes([(dict(fields), body) for fields, body in HOSTILE[case]])
    r = import_tar(client, "hostile", data)
    check_error(r, 400, "invalid_archive")
    assert "hostile" not in images(client)
    no_leftovers(forged)


def test_import_caps(forged, client, victim):
    many = tar_bytes([f("f%d" % i) for i in range(50)])
    check_error(import_tar(client, "bomb", many, "?max_entries=20"), 413, "payload_too_large")
    big = tar_bytes([f("big", b"\0" * (2 * 1024 * 1024))], "gz")
    assert len(big) < 100 * 1024  # compresses well; expands past the cap
    check_error(import_tar(client, "bomb", big, "?max_bytes=1048576"), 413, "payload_too_large")
    check_error(import_tar(client, "bomb", many, "?max_entries=0"), 400, "invalid_request")
    check_error(import_tar(client, "bomb", b"not a tar at all" * 100), 400, "invalid_archive")
    assert "bomb" not in images(client)
    no_leftovers(forged)


def test_import_modes_owners_duplicates(forged, client, victim):
    data = tar_bytes([
        f("setuid", b"#!/bin/sh\n", 0o4777, uid=1234, gid=5678, uname="eve", gname="eve"),
        d("sticky", 0o1777),
        f("dup", b"first"), f("dup", b"second"),
        sym("link", "/etc/passwd"), f("link", b"replaced the symlink"),
        f("a/b/c/implicit-parents", b"ok"),
        f("target", b"shared"), hard("hardlink", "target"),
        f("./dotslash//name", b"normalized"),
    ])
    r = import_tar(client, "modes", data)
    assert r.status == 201, r.describe()
    root = os.path.join(forged.state_dir, "images", "modes", "rootfs")
    st = os.lstat(os.path.join(root, "setuid"))
    assert st.st_mode & 0o7777 == 0o755 and st.st_uid == 0 and st.st_gid == 0
    assert os.lstat(os.path.join(root, "sticky")).st_mode & 0o7777 == 0o755
    assert open(os.path.join(root, "dup"), "rb").read() == b"second"
    assert not os.path.islink(os.path.join(root, "link"))
    assert open(os.path.join(root, "a/b/c/implicit-parents"), "rb").read() == b"ok"
    assert os.lstat(os.path.join(root, "hardlink")).st_ino == os.lstat(os.path.join(root, "target")).st_ino
    assert open(os.path.join(root, "dotslash/name"), "rb").read() == b"normalized"
    assert client.request("DELETE", "/v1/images/modes").status == 204
    assert "modes" not in images(client)
    no_leftovers(forged, timeout=30)


def test_import_and_run(forged, client, make_sandbox):
    r = import_tar(client, "tiny", minimal_rootfs("gz"))
    assert r.status == 201, r.describe()
    img = r.json()
    assert img["name"] == "tiny" and img["runtimes"] == {"sh": "sh"} and img["size"] > 0
    check_error(import_tar(client, "tiny", minimal_rootfs()), 409, "image_exists")
    sb = make_sandbox({"image": "tiny"})
    assert sb.sh("echo hello from tiny") == "hello from tiny\n"
    # The host's userland is not there: only what the tarball held.
    assert sb.shell("test -e /usr/bin/python3")["exitCode"] != 0
    assert sb.shell("test -e /etc/os-release")["exitCode"] != 0


def test_forgectl_image(forged, client, tmp_path):
    forgectl = os.path.join(forged.bin_dir, "forgectl")
    env = dict(os.environ, FORGE_URL=forged.url)
    tar = tmp_path / "rootfs.tar"
    tar.write_bytes(minimal_rootfs())

    def run(*args):
        return subprocess.run([forgectl, "image"] + list(args), capture_output=True, text=True, env=env,
                              timeout=300)

    p = run("import", "viactl", str(tar))
    assert p.returncode == 0 and p.stdout.startswith("imported viactl"), p
    p = run("ls")
    assert p.returncode == 0 and "viactl" in p.stdout and "host" in p.stdout, p
    p = run("build", "nosuchrecipe")
    assert p.returncode == 1 and "recipe_not_found" in p.stderr, p
    p = run("rm", "viactl")
    assert p.returncode == 0, p
    p = run("rm", "viactl")
    assert p.returncode == 1 and "image_not_found" in p.stderr, p
    p = run("frobnicate")
    assert p.returncode == 2, p


def first_event(conn):
    """The first Server-Sent Event of a build answer as (event, data)."""
    resp = conn.getresponse()
    assert resp.status == 200
    lines = [resp.readline().decode().strip() for _ in range(2)]
    assert lines[0].startswith("event: ") and lines[1].startswith("data: "), lines
    return lines[0][7:], json.loads(lines[1][6:])


def test_interrupted_build_leaves_nothing(forged_fn):
    """A derived image without its parent: the build makes the parent first, a second
    build of another child waits for that one. forged killed meanwhile: the restart
    removes every half-made image."""
    c = forged_fn.client
    import http.client
    conns = [http.client.HTTPConnection(c.host, c.port, timeout=60) for _ in range(2)]
    conns[0].request("POST", "/v1/images/python/build")
    ev, data = first_event(conns[0])
    assert (ev, data["image"], data["phase"]) == ("progress", "python", "parent"), data
    assert "building the parent image 'base' first" in data["message"], data
    conns[1].request("POST", "/v1/images/node/build")
    ev, data = first_event(conns[1])
    assert (ev, data["image"], data["phase"]) == ("progress", "node", "parent"), data
    assert "waiting for image 'base'" in data["message"], data
    check_error(c.request("POST", "/v1/images/base/build"), 409, "image_busy")
    images_dir = os.path.join(forged_fn.state_dir, "images")
    deadline = time.monotonic() + 60
    while not any(n.startswith(".new-base") for n in os.listdir(images_dir)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    forged_fn.kill9()
    for conn in conns:
        conn.close()
    forged_fn.restart()
    assert [n for n in os.listdir(images_dir) if n.startswith(".")] == []
    assert set(images(c)) == {"host"}


# ---- the slow part: python and node ----

def tree_meta(root, skip=("var/lib/dpkg", "var/cache", "var/log", "etc/ld.so.cache", "usr/lib/python3",
                          "etc/alternatives", "usr/share/doc", "proc")):
    """path -> (type and mode, uid, gid, link target, device) of every entry under root
    but the listed ones (apt changes those), and the groups of hardlinked files."""
    meta, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = [n for n in dirnames if os.path.normpath(os.path.join(rel, n)) not in skip]
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            key = os.path.relpath(p, root)
            if key in skip:
                continue
            st = os.lstat(p)
            link = os.readlink(p) if os.path.islink(p) else None
            meta[key] = (st.st_mode, st.st_uid, st.st_gid, link, st.st_rdev)
            if st.st_nlink > 1 and not os.path.isdir(p):
                inodes.setdefault(st.st_ino, set()).add(key)
    return meta, sorted(sorted(g) for g in inodes.values())


def check_copy_of_base(forged, name):
    """A derived image starts as a faithful copy of base: owners, modes (setuid kept),
    symlinks, device nodes and hardlinks; apt only adds to it."""
    images_dir = os.path.join(forged.state_dir, "images")
    base, base_links = tree_meta(os.path.join(images_dir, "base", "rootfs"))
    child, child_links = tree_meta(os.path.join(images_dir, name, "rootfs"))
    changed = {k: (v, child.get(k)) for k, v in base.items() if child.get(k) != v}
    assert changed == {}, list(changed.items())[:10]
    assert any(v[4] for v in base.values()), "base has device nodes (dev/null)"
    assert any(v[0] & 0o4000 for v in base.values()), "base has setuid programs"
    assert base_links, "base has hardlinks"
    for group in base_links:
        assert any(set(group) <= set(g) for g in child_links), group
    assert not os.path.lexists(os.path.join(images_dir, name, "rootfs", BUILD_DPKG_CFG))


def test_build_python_and_node(forged, client, base_image, make_sandbox):
    # Both at once: they share the package caches, and the test takes the longer one.
    import threading
    built = {}

    def run(name):
        try:
            built[name] = build(client, name)
        except AssertionError as e:
            built[name] = e

    threads = [threading.Thread(target=run, args=(n,)) for n in ("python", "node")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, runtime, code, expect in (
            ("python", "python", "import sys\nx = %r\nprint(len(x), sys.version_info[0])" % ("p" * 300000),
             "300000 3\n"),
            ("node", "node", "const x = %s;\nconsole.log(x.length, typeof process.versions.node)" %
             json.dumps("n" * 300000), "300000 string\n")):
        assert not isinstance(built[name], AssertionError), built[name]
        events, _ = built[name]
        assert runtime in events[-1][1]["runtimes"]
        # From a copy of base, never debootstrap again: no sources or extract phase.
        progress = [d for e, d in events if e == "progress"]
        phases = {d["phase"] for d in progress}
        assert {"copy", "install", "finish"} <= phases and not phases & {"sources", "extract"}, phases
        assert {d["image"] for d in progress} == {name}
        check_copy_of_base(forged, name)
        # runtime resolution picks the built image over the host
        sb = make_sandbox({"runtime": runtime})
        assert sb.info["image"] == name, sb.info
        assert "Debian GNU/Linux 12" in sb.sh("cat /etc/os-release")
        res = sb.execute(code, runtime=runtime)
        assert res["exitCode"] == 0 and res["stdout"] == expect, res
    sb = make_sandbox({"image": "python"})
    assert sb.sh("python3 -m venv /tmp/v && /tmp/v/bin/python -c 'print(42)'") == "42\n"
    assert sb.sh("python3 -m pip --version").startswith("pip ")
    sb = make_sandbox({"image": "node"})
    assert sb.sh("npm --version").strip()[0].isdigit()
    # SandboX's client: create without a body, execute by runtime; and create by runtime
    r = client.request("POST", "/v1/sandbox", {"runtime": "python"})
    assert r.status == 201 and r.json()["image"] == "python", r.describe()
    sid = r.json()["id"]
    r = client.request("POST", "/v1/sandbox/%s/execute" % sid, {"code": "print(6*7)", "runtime": "python"})
    assert r.status == 200 and r.json()["stdout"] == "42\n", r.describe()
    assert client.delete(sid).status == 204
