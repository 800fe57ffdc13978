"""SECURITY.md battery, kernel surface: K1-K13.

Each attempt runs inside a real sandbox through the static probe (probe/probe-kernel.c),
in its own forked child, and is reported as "ok:<value>", "<ERRNO>" or
"killed:<SIGNAL>". EPERM, ENOSYS and a SIGSYS kill count as blocked; anything else,
including another errno (which means the kernel got past the permission check and
looked at the arguments), does not.
"""

import re

from secutil import describe, not_blocked

KEYRING = ["keyctl_session", "keyctl_join", "add_key", "request_key"]
MODULE = ["init_module", "finit_module", "delete_module"]
TRACING = ["bpf_map_create", "perf_event_open", "userfaultfd", "io_uring_setup",
           "io_uring_enter", "io_uring_register"]
PTRACE = ["ptrace_seize_child", "ptrace_attach_child", "ptrace_seize_init", "ptrace_traceme",
          "process_vm_readv", "kcmp", "pidfd_getfd"]
MACHINE = ["kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "iopl", "ioperm",
           "open_by_handle_at"]
NS = ["setns_mnt", "setns_user", "setns_net", "setns_pidfd", "unshare_user", "unshare_mnt",
      "unshare_net", "unshare_pid", "unshare_uts", "unshare_ipc", "unshare_cgroup",
      "unshare_time"]
SOCK = ["socket_alg", "socket_vsock", "socket_packet_raw", "socket_packet_dgram",
        "socket_inet_raw", "socket_inet_raw_icmp", "socket_inet6_raw", "socket_inet_packet"]
I386 = ["i386_getpid", "i386_keyctl", "i386_unshare_user", "i386_io_uring_setup",
        "i386_socket_vsock", "i386_sethostname"]
X32 = ["x32_getpid", "x32_keyctl", "x32_unshare_user", "x32_io_uring_setup", "x32_socket_vsock"]
TTY = ["tiocsti", "tiocsti_high", "tioclinux", "tioclinux_high"]
CLOCK = ["clock_settime", "settimeofday", "adjtimex_set", "adjtimex_read", "clock_adjtime_read"]
UTS = ["sethostname", "setdomainname"]


def _case(sec, group, names, also=()):
    sb = sec.new()
    results = sec.syscalls(sb, group)
    bad = not_blocked(results, names, also)
    assert not bad, "not blocked (want EPERM, ENOSYS or SIGSYS): %s\nall: %s" % (
        describe(bad), describe(results))
    return sb, results


def test_k1_keyrings(sec):
    _case(sec, "keyring", KEYRING)
    sec.finish()


def test_k2_modules(sec):
    _case(sec, "module", MODULE)
    sec.finish()


def test_k3_bpf_perf_userfaultfd_io_uring(sec):
    _case(sec, "tracing", TRACING)
    sec.finish()


def test_k4_ptrace_any_pid(sec):
    sb, _ = _case(sec, "ptrace", PTRACE)
    # the agent is still there and answering
    assert sb.sh("echo alive") == "alive\n"
    sec.finish()


def test_k5_kexec_reboot_swap_iopl_handles(sec):
    sb, _ = _case(sec, "machine", MACHINE)
    assert sb.sh("echo alive") == "alive\n"
    sec.finish()


def test_k6_setns_unshare(sec):
    _case(sec, "ns", NS)
    sec.finish()


def test_k7_socket_families(sec):
    _case(sec, "sock", SOCK)
    sec.finish()


def test_k8_foreign_abis(sec):
    """Blocked calls through the i386 ABI (int 0x80) and the x32 ABI (__X32_SYSCALL_BIT).
    The profile allows the native arch only, so even getpid must not go through. A
    SIGSEGV on int 0x80 means the kernel has no i386 emulation at all: the ABI is not
    there to attack, which also counts."""
    _case(sec, "abi", I386 + X32, also=("killed:SIGSEGV",))
    sec.finish()


def test_k9_tiocsti(sec):
    """TIOCSTI and TIOCLINUX on the probe's own controlling pty (what the kernel allows
    an unprivileged process), also with bits above the low 32 set."""
    _case(sec, "tty", TTY)
    sec.finish()


def test_k10_clock(sec):
    """Setting the clock (to the time it already has) and the adjtimex family, which the
    profile denies outright."""
    _case(sec, "clock", CLOCK)
    sec.finish()


def test_k11_sethostname(sec):
    sb, _ = _case(sec, "uts", UTS)
    assert sb.sh("uname -n") == sb.id + "\n"
    sec.finish()


_THREADS = ("python3 -c 'import threading, time\n"
            "for _ in range(3): threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
            "time.sleep(30)' >/dev/null 2>&1 &\n"
            "sleep 1\n"
            "for t in /proc/[0-9]*/task/[0-9]*; do\n"
            "  echo \"== $t $(cat $t/comm 2>/dev/null)\"\n"
            "  grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs|Cap[A-Za-z]+):' $t/status 2>/dev/null\n"
            "done; true")


def _threads(sb):
    """{'/proc/P/task/T comm': {field: value}} for every thread visible in the sandbox."""
    out = {}
    cur = None
    for line in sb.sh(_THREADS).splitlines():
        if line.startswith("== "):
            cur = line[3:]
            out[cur] = {}
        elif cur and ":" in line:
            k, v = line.split(":", 1)
            out[cur][k.strip()] = v.strip()
    pids = {re.match(r"/proc/(\d+)/", t).group(1) for t in out}
    assert "1" in pids, "the agent's threads are not visible: %r" % list(out)
    assert sum(1 for t in out if "python3" in t) >= 4, "the threaded process is missing: %r" % list(out)
    return out


def test_k12_seccomp_every_thread(sec):
    sb = sec.new(probe=False)
    threads = _threads(sb)
    bad = {t: (f.get("Seccomp"), f.get("Seccomp_filters")) for t, f in threads.items()
           if f.get("Seccomp") != "2" or int(f.get("Seccomp_filters", "0")) < 1}
    assert not bad, "threads without a seccomp filter (Seccomp, Seccomp_filters): %r" % bad
    sec.finish()


def test_k13_no_new_privs_no_caps_every_thread(sec):
    sb = sec.new(probe=False)
    threads = _threads(sb)
    caps = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
    bad = {}
    for t, f in threads.items():
        wrong = {k: f.get(k) for k in caps if f.get(k) is None or int(f[k], 16) != 0}
        if f.get("NoNewPrivs") != "1":
            wrong["NoNewPrivs"] = f.get("NoNewPrivs")
        if wrong:
            bad[t] = wrong
    assert not bad, "threads with privileges: %r" % bad
    sec.finish()
