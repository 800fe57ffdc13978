/* The ns isolator against the real kernel: needs root. Checks run from the host side
 * through /proc, mountinfo and the cgroup filesystems, and from the inside through probes
 * that the real agent (FORGE_AGENT_BIN, the sandbox's init) runs over its protocol. */
#include <sched.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <signal.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic/fs-util.h"
#include "basic/rm-rf.h"
#include "daemon/core/image-host.h"
#include "daemon/isolator/isolator.h"
#include "daemon/isolator/cgroup.h"
#include "daemon/isolator/ns/ns-internal.h"
#include "proto/proto.h"

typedef struct Fixture {
        char state[PATH_MAX];
        char rootfs[PATH_MAX];
        char dir[PATH_MAX];
        char id[SANDBOX_ID_MAX + 1];
        SandboxPlan plan;
} Fixture;

static int counter;

/* snprintf that fails the test instead of truncating. */
static void _printf_(3, 4) xsnprintf(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        int n = vsnprintf(buf, size, fmt, ap);
        va_end(ap);
        assert_true(n >= 0 && (size_t) n < size);
}

static int fixture_setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        ForgeError err = {0};

        assert_non_null(f);
        xsnprintf(f->state, sizeof(f->state), "/tmp/forge-test-ns-XXXXXX");
        assert_non_null(mkdtemp(f->state));
        assert_int_equal(image_host_prepare(f->state, &err), 0);
        xsnprintf(f->rootfs, sizeof(f->rootfs), "%s/images/host/rootfs", f->state);
        xsnprintf(f->id, sizeof(f->id), "t%ldn%d", (long) getpid(), counter++);
        xsnprintf(f->dir, sizeof(f->dir), "%s/sandboxes/%s", f->state, f->id);
        assert_int_equal(mkdir_p(f->dir, 0700), 0);
        f->plan = (SandboxPlan){
                .dir = f->dir,
                .image_name = "host",
                .image_rootfs = f->rootfs,
                .agent_path = getenv("FORGE_AGENT_BIN"),
                .ro_binds = image_host_ro_binds(),
                .hostname = f->id,
                .uid_base = 300000000u + (uint32_t) (getpid() % 1000) * 65536u,
                .uid_count = 65536,
                .limits = {.cpus_milli = 500, .memory_mb = 256, .pids = 100},
        };
        xsnprintf(f->plan.id, sizeof(f->plan.id), "%s", f->id);
        assert_non_null(f->plan.agent_path);
        *state = f;
        return 0;
}

static int fixture_teardown(void **state) {
        Fixture *f = *state;

        isolator_ns.destroy(&f->plan);
        rm_rf_at(AT_FDCWD, f->state);
        free(f);
        return 0;
}

static pid_t init_pid(const Fixture *f) {
        char path[PATH_MAX], buf[64];
        long pid = 0;

        xsnprintf(path, sizeof(path), "%s/ns.pid", f->dir);
        assert_int_equal(read_full_file(path, buf, sizeof(buf), NULL), 0);
        assert_int_equal(sscanf(buf, "%ld", &pid), 1);
        return (pid_t) pid;
}

static void start_sandbox(Fixture *f) {
        ForgeError err = {0};

        if (isolator_ns.create(&f->plan, &err) < 0 || isolator_ns.start(&f->plan, &err) < 0)
                fail_msg("sandbox start failed: %s (%s)", err.message, err.code);
}

static void read_proc(pid_t pid, const char *file, char *buf, size_t size) {
        char path[64];

        xsnprintf(path, sizeof(path), "/proc/%ld/%s", (long) pid, file);
        assert_int_equal(read_full_file(path, buf, size, NULL), 0);
}

static void check_namespaces(pid_t pid) {
        static const char *const kinds[] = {"user", "pid", "mnt", "net", "ipc", "uts", "cgroup"};
        char mine[PATH_MAX], theirs[PATH_MAX], path[64];

        for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
                ssize_t n;
                xsnprintf(path, sizeof(path), "/proc/self/ns/%s", kinds[i]);
                n = readlink(path, mine, sizeof(mine) - 1);
                assert_true(n > 0);
                mine[n] = 0;
                xsnprintf(path, sizeof(path), "/proc/%ld/ns/%s", (long) pid, kinds[i]);
                n = readlink(path, theirs, sizeof(theirs) - 1);
                assert_true(n > 0);
                theirs[n] = 0;
                if (strcmp(mine, theirs) == 0)
                        fail_msg("namespace %s is shared with the host", kinds[i]);
        }
}

static void check_ids_and_privileges(const Fixture *f, pid_t pid) {
        static const char *const caps[] = {"CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"};
        char buf[8192];
        unsigned long inside, outside, count;

        read_proc(pid, "uid_map", buf, sizeof(buf));
        assert_int_equal(sscanf(buf, "%lu %lu %lu", &inside, &outside, &count), 3);
        assert_int_equal(inside, 0);
        assert_int_equal(outside, f->plan.uid_base);
        assert_int_equal(count, f->plan.uid_count);
        read_proc(pid, "status", buf, sizeof(buf));
        for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
                char *line = strstr(buf, caps[i]);
                assert_non_null(line);
                assert_int_equal(strtoull(line + strlen(caps[i]), NULL, 16), 0);
        }
        assert_non_null(strstr(buf, "NoNewPrivs:\t1"));
}

static void status_field(const char *status, const char *key, char *ret, size_t size) {
        const char *line = strstr(status, key);

        assert_non_null(line);
        line += strlen(key);
        line += strspn(line, "\t ");
        snprintf(ret, size, "%.*s", (int) strcspn(line, "\n"), line);
}

/* The user namespace belongs to the sandbox's host uid, not to host root (forged): the
 * kernel charges per-user counts (inotify, mqueue...) in the initial namespace to the
 * owner, so each sandbox has its own (SECURITY.md R12). */
static void check_userns_owner(const Fixture *f, pid_t pid) {
        char path[64];
        uid_t owner = (uid_t) -1;
        int fd;

        xsnprintf(path, sizeof(path), "/proc/%ld/ns/user", (long) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(ioctl(fd, NS_GET_OWNER_UID, &owner), 0);
        close(fd);
        assert_int_equal(owner, f->plan.uid_base);
}

/* ns.pid names the agent: PID 1 of its pid namespace and our own child (so destroy kills
 * the namespace with it and is_alive can reap it). */
static void check_init_process(pid_t pid) {
        char buf[8192], value[64], expected[64];

        read_proc(pid, "status", buf, sizeof(buf));
        status_field(buf, "NSpid:", value, sizeof(value));
        xsnprintf(expected, sizeof(expected), "%ld\t1", (long) pid);
        assert_string_equal(value, expected);
        status_field(buf, "PPid:", value, sizeof(value));
        assert_int_equal(atol(value), getpid());
        assert_non_null(strstr(buf, "Name:\tforge-agent"));
}

/* Finds the mountinfo line with this mount point; copies "options - fstype" into ret. */
static bool mount_find(const char *mountinfo, const char *point, char *ret, size_t size) {
        char needle[PATH_MAX];
        const char *hit = NULL;

        xsnprintf(needle, sizeof(needle), " %s ", point);
        /* The last match wins: it is the mount on top. */
        for (const char *p = mountinfo; (p = strstr(p, needle)); p++) {
                const char *bol = p;
                while (bol > mountinfo && bol[-1] != '\n')
                        bol--;
                /* Field 5 is the mount point: skip 4 fields. */
                const char *q = bol;
                for (int i = 0; i < 4 && q; i++)
                        q = strchr(q, ' '), q = q ? q + 1 : NULL;
                if (q && q == p + 1)
                        hit = p;
        }
        if (!hit)
                return false;
        const char *eol = strchr(hit, '\n');
        snprintf(ret, size, "%.*s", (int) (eol ? eol - hit : (long) strlen(hit)), hit);
        return true;
}

static void check_mounts(pid_t pid) {
        static char mountinfo[65536];
        char line[PATH_MAX], path[PATH_MAX];
        struct stat st;

        read_proc(pid, "mountinfo", mountinfo, sizeof(mountinfo));
        assert_true(mount_find(mountinfo, "/", line, sizeof(line)));
        assert_non_null(strstr(line, " - overlay "));
        assert_true(mount_find(mountinfo, "/proc", line, sizeof(line)));
        assert_non_null(strstr(line, " - proc "));
        assert_non_null(strstr(line, "nosuid,nodev,noexec"));
        assert_true(mount_find(mountinfo, "/usr", line, sizeof(line)));
        assert_true(strncmp(line, " /usr ro,", 9) == 0);
        assert_true(mount_find(mountinfo, "/dev", line, sizeof(line)));
        assert_non_null(strstr(line, " - tmpfs "));
        assert_true(mount_find(mountinfo, "/dev/pts", line, sizeof(line)));
        assert_true(mount_find(mountinfo, "/dev/shm", line, sizeof(line)));
        assert_false(mount_find(mountinfo, "/sys", line, sizeof(line)));
        assert_false(mount_find(mountinfo, "/home", line, sizeof(line)));

        xsnprintf(path, sizeof(path), "/proc/%ld/root/etc/shadow", (long) pid);
        assert_int_equal(lstat(path, &st), -1);
        assert_int_equal(errno, ENOENT);
        xsnprintf(path, sizeof(path), "/proc/%ld/root/dev/null", (long) pid);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISCHR(st.st_mode));
        xsnprintf(path, sizeof(path), "/proc/%ld/root/usr/bin/sh", (long) pid);
        assert_int_equal(access(path, X_OK), 0);
}

static uint64_t cgroup_knob(const char *id, CgroupController c, const char *v1, const char *v2) {
        const CgroupLayout *l;
        const CgroupHierarchy *h;
        char path[PATH_MAX], buf[128];

        assert_int_equal(cgroup_layout_get(&l), 0);
        h = cgroup_layout_find(l, c);
        if (!h)
                return 0;
        assert_int_equal(cgroup_path(h, id, h->v2 ? v2 : v1, path, sizeof(path)), 0);
        assert_int_equal(read_full_file(path, buf, sizeof(buf), NULL), 0);
        return strtoull(buf, NULL, 10);
}

static void check_cgroups(const Fixture *f, pid_t pid) {
        char buf[4096], needle[64];

        read_proc(pid, "cgroup", buf, sizeof(buf));
        xsnprintf(needle, sizeof(needle), "/forge/%s\n", f->id);
        assert_non_null(strstr(buf, needle));
        uint64_t mem = cgroup_knob(f->id, CGROUP_MEMORY, "memory.limit_in_bytes", "memory.max");
        if (mem)
                assert_int_equal(mem, 256ull * 1024 * 1024);
        uint64_t pids = cgroup_knob(f->id, CGROUP_PIDS, "pids.max", "pids.max");
        if (pids)
                assert_int_equal(pids, 100);
        uint64_t quota = cgroup_knob(f->id, CGROUP_CPU, "cpu.cfs_quota_us", "cpu.max");
        if (quota)
                assert_int_equal(quota, 50000);
}

static void check_connect(const Fixture *f) {
        struct pollfd pfd = {.events = POLLOUT};
        int fd = -1;

        assert_int_equal(isolator_ns.connect(&f->plan, &fd), 0);
        assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        pfd.fd = fd;
        assert_int_equal(poll(&pfd, 1, 5000), 1);
        assert_true(pfd.revents & POLLOUT);
        close(fd);
}

static bool cgroup_exists(const char *id) {
        const CgroupLayout *l;
        char path[PATH_MAX];

        assert_int_equal(cgroup_layout_get(&l), 0);
        for (size_t i = 0; i < l->n_hierarchies; i++) {
                assert_int_equal(cgroup_path(&l->hierarchies[i], id, NULL, path, sizeof(path)), 0);
                if (access(path, F_OK) >= 0)
                        return true;
        }
        return false;
}

static bool known_except(const char *id, void *userdata) {
        /* Only ever reap our own sandbox: other daemons may share this machine. */
        return strcmp(id, userdata) != 0;
}

/* ---- probes: a minimal synchronous client of the agent protocol ---- */

static void read_exact(int fd, void *buf, size_t n) {
        for (size_t done = 0; done < n;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                assert_int_equal(poll(&p, 1, 60000), 1); /* a hang is a failure */
                ssize_t k = read(fd, (char *) buf + done, n - done);
                assert_true(k > 0);
                done += (size_t) k;
        }
}

static uint8_t *frame_recv(int fd, ProtoHeader *h) {
        uint8_t raw[PROTO_HEADER_SIZE], *payload;

        read_exact(fd, raw, sizeof(raw));
        assert_int_equal(proto_header_decode(raw, h), 0);
        payload = malloc(h->length + 1);
        assert_non_null(payload);
        read_exact(fd, payload, h->length);
        return payload;
}

static int agent_open(const Fixture *f) {
        struct pollfd pfd = {.events = POLLOUT};
        ProtoHeader h;
        int fd = -1;

        assert_int_equal(isolator_ns.connect(&f->plan, &fd), 0);
        pfd.fd = fd;
        assert_int_equal(poll(&pfd, 1, 5000), 1);
        assert_int_equal(fcntl(fd, F_SETFL, 0), 0);
        free(frame_recv(fd, &h));
        assert_int_equal(h.type, PROTO_HELLO);
        return fd;
}

/* Runs `sh -c script` in the sandbox; returns its exit code, stdout in out. */
static int sandbox_sh(const Fixture *f, const char *script, char *out, size_t size) {
        int fd = agent_open(f);
        ProtoBuf b = {0};
        ProtoExit ex = {0};
        size_t n = 0;
        uint16_t ev;

        proto_request_begin(&b, 1, PROTO_OP_SPAWN);
        proto_buf_put_str(&b, PROTO_TAG_ARGV, "/bin/sh");
        proto_buf_put_str(&b, PROTO_TAG_ARGV, "-c");
        proto_buf_put_str(&b, PROTO_TAG_ARGV, script);
        proto_buf_put_str(&b, PROTO_TAG_ENV, "PATH=/usr/bin:/bin:/usr/sbin:/sbin");
        proto_buf_put_int(&b, PROTO_TAG_CHANNEL, 1);
        assert_int_equal(proto_frame_finish(&b), 0);
        assert_int_equal(write(fd, b.data, b.len), (ssize_t) b.len);
        proto_buf_free(&b);
        for (;;) {
                ProtoHeader h;
                uint8_t *payload = frame_recv(fd, &h);
                if (h.type == PROTO_RESPONSE) {
                        ProtoResponse resp;
                        assert_int_equal(proto_response_decode(payload, h.length, &resp), 0);
                        assert_int_equal(resp.status, 0);
                        proto_response_done(&resp);
                } else if (h.type == PROTO_DATA && h.channel == 1 && h.stream == PROTO_STREAM_STDOUT) {
                        assert_true(n + h.length < size);
                        memcpy(out + n, payload, h.length);
                        n += h.length;
                } else if (h.type == PROTO_EVENT && h.channel == 1) {
                        assert_int_equal(proto_event_decode(payload, h.length, &ev, &ex), 0);
                        free(payload);
                        break;
                }
                free(payload);
        }
        out[n] = 0;
        close(fd);
        return ex.signal ? 128 + (int) ex.signal : (int) ex.exit_code;
}

static void sh_expect(const Fixture *f, const char *script, const char *expected) {
        static char out[65536];
        int code = sandbox_sh(f, script, out, sizeof(out));

        if (code != 0 || strcmp(out, expected) != 0)
                fail_msg("probe `%s`: exit %d, output '%s', expected '%s'", script, code, out, expected);
}

/* Seccomp, NoNewPrivs and every capability set of the agent (from the host) and of a
 * grandchild it spawned (from the inside). */
static void check_hardening_status(const Fixture *f, pid_t pid) {
        static const char *const keys[] = {"Seccomp:", "NoNewPrivs:", "CapInh:", "CapPrm:",
                                           "CapEff:",  "CapBnd:",     "CapAmb:"};
        static const char *const want[] = {"2", "1", "0000000000000000", "0000000000000000", "0000000000000000",
                                           "0000000000000000", "0000000000000000"};
        char status[8192], value[256], script[512], expected[512] = "";

        read_proc(pid, "status", status, sizeof(status));
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                status_field(status, keys[i], value, sizeof(value));
                if (strcmp(value, want[i]) != 0)
                        fail_msg("agent %s %s, expected %s", keys[i], value, want[i]);
                strcat(expected, want[i]);
                strcat(expected, "\n");
        }
        xsnprintf(script, sizeof(script),
                  "sh -c 'for k in Seccomp NoNewPrivs CapInh CapPrm CapEff CapBnd CapAmb; do "
                  "sed -n \"s/^$k:[[:space:]]*//p\" /proc/self/status; done'");
        sh_expect(f, script, expected);
        /* The agent made itself non-dumpable; its environment is PATH alone. */
        read_proc(pid, "environ", value, sizeof(value));
        assert_string_equal(value, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        sh_expect(f, "ls /proc/self/fd | tr '\\n' ' '", "0 1 2 3 ");
        sh_expect(f, "ulimit -c; ulimit -n", "0\n1024\n");
}

/* Calls the filter denies answer EPERM/ENOSYS; what the agent needs still works. */
static void check_seccomp_rules(const Fixture *f) {
        sh_expect(f, "unshare -U true 2>/dev/null || echo denied", "denied\n");
        sh_expect(f, "unshare -m true 2>/dev/null || echo denied", "denied\n");
        sh_expect(f, "mount -t tmpfs t /mnt 2>/dev/null || echo denied", "denied\n");
        sh_expect(f, "hostname evil 2>/dev/null || echo denied", "denied\n");
        sh_expect(f, "dmesg >/dev/null 2>&1 || echo denied", "denied\n");
        /* fork without namespace flags, setsid and pipes keep working */
        sh_expect(f, "(setsid sh -c 'echo child') | cat", "child\n");
        if (access("/usr/bin/python3", X_OK) == 0) {
                sh_expect(f,
                          "python3 -c 'import ctypes,errno; l=ctypes.CDLL(None,use_errno=True); "
                          "r=[]; "
                          "r.append(l.syscall(435,0,0)==-1 and ctypes.get_errno()==errno.ENOSYS); "      /* clone3 */
                          "r.append(l.personality(0x0040000)==-1 and ctypes.get_errno()==errno.EPERM); " /* ASLR off */
                          "r.append(l.personality(0xffffffff)>=0); "
                          "r.append(l.syscall(0x40000000|39)==-1 and ctypes.get_errno()==errno.ENOSYS); " /* x32 getpid */
                          "import socket; "
                          "exec(\"try:\\n socket.socket(38,5,0); r.append(False)\\nexcept OSError as e: r.append(e.errno==errno.EPERM)\"); "
                          "exec(\"try:\\n socket.socket(40,1,0); r.append(False)\\nexcept OSError as e: r.append(e.errno==errno.EPERM)\"); "
                          "r.append(l.ioctl(0,0x5412|(1<<32),ctypes.c_char_p(b\"x\"))==-1 and ctypes.get_errno()==errno.EPERM); "
                          "r.append(l.syscall(298,0,0,0,0,0)==-1 and ctypes.get_errno()==errno.EPERM); " /* perf_event_open */
                          "r.append(l.syscall(425,1,0)==-1 and ctypes.get_errno()==errno.EPERM); "       /* io_uring_setup */
                          "print(r)'",
                          "[True, True, True, True, True, True, True, True, True]\n");
        }
}

static const char *const proc_covered[] = {
        "acpi", "asound",      "interrupts", "kcore", "keys", "latency_stats", "sched_debug", "scsi", "timer_list",
        "timer_stats", "bus", "fs",         "irq",   "sys",  "sysrq-trigger",
};

/* Masked files read empty, /proc/sys and friends are read-only, /dev holds only the
 * listed nodes, flags as SECURITY.md says. */
static void check_proc_and_dev(const Fixture *f, pid_t pid) {
        static char mountinfo[65536];
        char line[PATH_MAX];

        /* Masked files read empty, masked directories list nothing (this kernel may lack some). */
        sh_expect(f,
                  "for p in acpi asound interrupts kcore keys latency_stats sched_debug scsi timer_list timer_stats; "
                  "do if test -d /proc/$p; then ls -A /proc/$p; elif test -e /proc/$p; then cat /proc/$p; fi; done "
                  "| wc -c",
                  "0\n");
        sh_expect(f, "test ! -e /proc/sysrq-trigger || echo 1 > /proc/sysrq-trigger 2>/dev/null || echo denied",
                  access("/proc/sysrq-trigger", F_OK) == 0 ? "denied\n" : "");
        sh_expect(f, "echo 1 > /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo denied", "denied\n");
        sh_expect(f, "ls /dev | tr '\\n' ' '", "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero ");
        sh_expect(f, "test -e /sys || echo no-sys", "no-sys\n");
        read_proc(pid, "mountinfo", mountinfo, sizeof(mountinfo));
        assert_true(mount_find(mountinfo, "/proc/sys", line, sizeof(line)));
        assert_true(strncmp(line, " /proc/sys ro,", 14) == 0);
        for (size_t i = 0; i < ELEMENTSOF(proc_covered); i++) {
                char host[64], point[64];
                xsnprintf(host, sizeof(host), "/proc/%s", proc_covered[i]);
                xsnprintf(point, sizeof(point), "/proc/%s", proc_covered[i]);
                if (access(host, F_OK) == 0 && !mount_find(mountinfo, point, line, sizeof(line)))
                        fail_msg("%s is not covered inside", point);
        }
        assert_true(mount_find(mountinfo, "/", line, sizeof(line)));
        assert_non_null(strstr(line, "nosuid,nodev"));
        assert_true(mount_find(mountinfo, "/dev", line, sizeof(line)));
        assert_non_null(strstr(line, "nosuid,nodev,noexec"));
        assert_true(mount_find(mountinfo, "/dev/shm", line, sizeof(line)));
        assert_non_null(strstr(line, "nosuid,nodev,noexec"));
        assert_true(mount_find(mountinfo, "/usr", line, sizeof(line)));
        assert_non_null(strstr(line, "ro,nosuid,nodev"));
        /* no host path leaks through mount options */
        assert_null(strstr(mountinfo, f->state));
}

/* The image and /usr are idmapped: host root's files are root's inside, /usr stays
 * read-only even for root, image files are edited through copy-up. */
static void check_idmapped(const Fixture *f) {
        char path[PATH_MAX], buf[4096];

        sh_expect(f, "stat -c %u:%g /usr/bin/sh /etc/passwd /", "0:0\n0:0\n0:0\n");
        sh_expect(f, "touch /usr/bin/forge-probe 2>/dev/null || echo denied", "denied\n");
        sh_expect(f, "echo 10.1.2.3 probe >> /etc/hosts && tail -n 1 /etc/hosts", "10.1.2.3 probe\n");
        sh_expect(f, "touch /tmp/t /root/r /var/tmp/v /x && echo ok", "ok\n");
        /* the image itself is untouched */
        xsnprintf(path, sizeof(path), "%s/etc/hosts", f->rootfs);
        assert_int_equal(read_full_file(path, buf, sizeof(buf), NULL), 0);
        assert_null(strstr(buf, "probe"));
}

static void test_hardening(void **state) {
        Fixture *f = *state;
        pid_t pid;

        start_sandbox(f);
        pid = init_pid(f);
        check_hardening_status(f, pid);
        check_seccomp_rules(f);
        check_proc_and_dev(f, pid);
        check_idmapped(f);
        assert_int_equal(isolator_ns.destroy(&f->plan), 0);
}

static bool host_has_mount_under(const char *dir) {
        static char mountinfo[1 << 20];

        assert_int_equal(read_full_file("/proc/self/mountinfo", mountinfo, sizeof(mountinfo), NULL), 0);
        return strstr(mountinfo, dir) != NULL;
}

static void check_disk_gone(const Fixture *f) {
        char loop[32] = "";

        for (int i = 0; i < 300 && (assert_int_equal(ns_disk_loop_find(f->dir, loop, sizeof(loop)) >= 0, 1), loop[0]);
             i++) {
                loop[0] = 0;
                usleep(10000);
        }
        assert_string_equal(loop, "");
        assert_false(host_has_mount_under(f->dir));
}

#define DISK_MB 64

static void test_disk_quota(void **state) {
        Fixture *f = *state;
        char path[PATH_MAX], loop[32] = "", out[256];
        struct stat st;
        pid_t pid;

        f->plan.limits.disk_mb = DISK_MB;
        start_sandbox(f);
        pid = init_pid(f);
        assert_int_equal(ns_disk_loop_find(f->dir, loop, sizeof(loop)), 1);
        assert_true(host_has_mount_under(f->dir));
        sh_expect(f, "ulimit -f", "131072\n"); /* 512-byte blocks: the disk cap */
        /* inodes are bounded too */
        sh_expect(f, "mkdir /root/many && cd /root/many && seq 1 20000 | xargs touch 2>/dev/null; "
                     "n=$(ls | wc -l); test $n -gt 1000 && test $n -lt 20000 && echo bounded",
                  "bounded\n");
        sh_expect(f, "rm -rf /root/many; head -c 40M /dev/zero > /root/a && head -c 40M /dev/zero > /tmp/b 2>/dev/null "
                     "|| echo full",
                  "full\n");
        assert_int_equal(sandbox_sh(f, "head -c 1M /dev/zero > /root/c 2>&1", out, sizeof(out)), 1);
        xsnprintf(path, sizeof(path), "%s/disk.img", f->dir);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_size, DISK_MB * 1024 * 1024);
        assert_true((uint64_t) st.st_blocks * 512 <= DISK_MB * 1024 * 1024);
        /* files outlive a restart: destroy releases the disk, start mounts it again */
        assert_int_equal(isolator_ns.destroy(&f->plan), 0);
        assert_int_equal(kill(pid, 0), -1);
        check_disk_gone(f);
        start_sandbox(f);
        sh_expect(f, "wc -c < /root/a", "41943040\n");
        assert_int_equal(isolator_ns.destroy(&f->plan), 0);
        check_disk_gone(f);
        assert_false(cgroup_exists(f->id));
}

static void test_disk_reap_unknown(void **state) {
        Fixture *f = *state;
        char loop[32] = "";

        f->plan.limits.disk_mb = DISK_MB;
        assert_int_equal(ns_disk_set_state_dir(f->state), 0);
        start_sandbox(f);
        assert_int_equal(ns_disk_loop_find(f->dir, loop, sizeof(loop)), 1);
        assert_int_equal(isolator_ns.reap_unknown(known_except, f->id), 0);
        assert_false(cgroup_exists(f->id));
        check_disk_gone(f);
}

/* A mount namespace made elsewhere while the disk is mounted keeps a copy of the mount:
 * destroy still succeeds, and the loop device goes once that namespace does. */
static void test_disk_held_elsewhere(void **state) {
        Fixture *f = *state;
        char loop[32] = "", ready;
        int hold[2], go[2];
        pid_t holder;

        f->plan.limits.disk_mb = DISK_MB;
        start_sandbox(f);
        assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
        assert_int_equal(pipe2(go, O_CLOEXEC), 0);
        holder = fork();
        assert_true(holder >= 0);
        if (holder == 0) {
                close(hold[1]);
                close(go[0]);
                if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                        _exit(1);
                (void) !write(go[1], "x", 1);
                (void) !read(hold[0], &ready, 1); /* until the test closes its end */
                _exit(0);
        }
        close(hold[0]);
        close(go[1]);
        assert_int_equal(read(go[0], &ready, 1), 1);
        close(go[0]);

        assert_int_equal(isolator_ns.destroy(&f->plan), 0);
        assert_false(host_has_mount_under(f->dir));
        assert_int_equal(ns_disk_loop_find(f->dir, loop, sizeof(loop)), 1); /* the copy holds it */
        close(hold[1]);
        assert_int_equal(waitpid(holder, NULL, 0), holder);
        check_disk_gone(f);
}

static void test_available(void **state) {
        ForgeError err = {0};

        if (isolator_ns.available(&err) < 0)
                fail_msg("ns isolator unavailable: %s", err.message);
        assert_ptr_equal(isolator_by_name("ns"), &isolator_ns);
        assert_null(isolator_by_name("nope"));
}

static void test_lifecycle(void **state) {
        Fixture *f = *state;
        SandboxUsage usage;
        char path[PATH_MAX];
        pid_t pid;

        start_sandbox(f);
        pid = init_pid(f);
        check_namespaces(pid);
        check_ids_and_privileges(f, pid);
        check_userns_owner(f, pid);
        check_init_process(pid);
        check_mounts(pid);
        check_cgroups(f, pid);
        check_connect(f);
        assert_int_equal(isolator_ns.is_alive(&f->plan), 1);
        /* start on a running sandbox is a no-op */
        start_sandbox(f);
        assert_int_equal(init_pid(f), pid);
        assert_int_equal(isolator_ns.stats(&f->plan, &usage), 0);
        assert_true(usage.pids >= 1);
        assert_true(usage.memory_peak_bytes >= usage.memory_bytes);

        assert_int_equal(isolator_ns.destroy(&f->plan), 0);
        assert_int_equal(kill(pid, 0), -1);
        assert_int_equal(errno, ESRCH);
        assert_false(cgroup_exists(f->id));
        xsnprintf(path, sizeof(path), "%s/agent.sock", f->dir);
        assert_int_equal(access(path, F_OK), -1);
        assert_int_equal(isolator_ns.is_alive(&f->plan), 0);
        assert_int_equal(isolator_ns.destroy(&f->plan), 0);
}

/* The freezer's state as the host sees it: "FROZEN"/"THAWED" (v1) or frozen 1/0 (v2). */
static bool host_sees_frozen(const char *id) {
        const CgroupLayout *l;
        const CgroupHierarchy *h;
        char path[PATH_MAX], buf[512];

        assert_int_equal(cgroup_layout_get(&l), 0);
        h = cgroup_layout_find(l, CGROUP_FREEZER);
        assert_non_null(h);
        assert_int_equal(cgroup_path(h, id, h->v2 ? "cgroup.events" : "freezer.state", path, sizeof(path)), 0);
        assert_int_equal(read_full_file(path, buf, sizeof(buf), NULL), 0);
        return h->v2 ? strstr(buf, "frozen 1") != NULL : strncmp(buf, "FROZEN", 6) == 0;
}

/* The init's state letter in /proc: T (stopped) or D while frozen, S when it waits. */
static char proc_state(pid_t pid) {
        char buf[512], *close_paren;

        read_proc(pid, "stat", buf, sizeof(buf));
        close_paren = strrchr(buf, ')');
        assert_non_null(close_paren);
        return close_paren[2];
}

static void test_suspend_resume(void **state) {
        Fixture *f = *state;
        pid_t pid;

        start_sandbox(f);
        pid = init_pid(f);
        assert_false(host_sees_frozen(f->id));
        assert_int_equal(isolator_ns.suspend(&f->plan), 0);
        assert_true(host_sees_frozen(f->id));
        assert_true(proc_state(pid) == 'D' || proc_state(pid) == 'T');
        /* idempotent, and the agent process is still there (memory stays) */
        assert_int_equal(isolator_ns.suspend(&f->plan), 0);
        assert_true(host_sees_frozen(f->id));
        assert_int_equal(isolator_ns.is_alive(&f->plan), 1);
        assert_int_equal(isolator_ns.resume(&f->plan), 0);
        assert_false(host_sees_frozen(f->id));
        assert_int_equal(isolator_ns.resume(&f->plan), 0);
        assert_false(host_sees_frozen(f->id));
        sh_expect(f, "echo awake", "awake\n");
        /* destroying a suspended sandbox works too */
        assert_int_equal(isolator_ns.suspend(&f->plan), 0);
        assert_int_equal(isolator_ns.destroy(&f->plan), 0);
        assert_int_equal(kill(pid, 0), -1);
        assert_false(cgroup_exists(f->id));
}

static void test_destroy_half_created(void **state) {
        Fixture *f = *state;
        ForgeError err = {0};

        assert_int_equal(isolator_ns.destroy(&f->plan), 0);
        assert_int_equal(isolator_ns.create(&f->plan, &err), 0);
        assert_int_equal(isolator_ns.create(&f->plan, &err), 0);
        assert_true(cgroup_exists(f->id));
        assert_int_equal(isolator_ns.is_alive(&f->plan), 0);
        assert_int_equal(isolator_ns.destroy(&f->plan), 0);
        assert_false(cgroup_exists(f->id));
}

/* A step of the init (after the setup child forked it) fails: start reports the step by
 * name, and neither the setup child nor the init is left behind, not even as a zombie. */
static void test_setup_failure(void **state) {
        Fixture *f = *state;
        ForgeError err = {0};
        char path[PATH_MAX];

        assert_int_equal(isolator_ns.create(&f->plan, &err), 0);
        xsnprintf(path, sizeof(path), "%s/upper", f->dir);
        assert_int_equal(rmdir(path), 0);
        assert_true(isolator_ns.start(&f->plan, &err) < 0);
        assert_string_equal(err.code, "isolator_failed");
        if (!strstr(err.message, "open-layers"))
                fail_msg("unexpected error: %s", err.message);
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
        assert_int_equal(isolator_ns.is_alive(&f->plan), 0);
        assert_int_equal(isolator_ns.destroy(&f->plan), 0);
}

static void test_reap_unknown(void **state) {
        Fixture *f = *state;
        pid_t pid;

        start_sandbox(f);
        pid = init_pid(f);
        assert_int_equal(isolator_ns.reap_unknown(known_except, f->id), 0);
        assert_false(cgroup_exists(f->id));
        assert_int_equal(isolator_ns.is_alive(&f->plan), 0);
        assert_int_equal(kill(pid, 0), -1);
}

static void test_image_host(void **state) {
        Fixture *f = *state;
        ForgeError err = {0};
        char path[PATH_MAX], buf[512], host_link[PATH_MAX], image_link[PATH_MAX];
        struct stat st;
        ssize_t n;

        static const char *const absent[] = {"etc/shadow", "etc/gshadow",     "etc/sudoers",
                                             "etc/ssh",    "etc/ssl/private", "etc/machine-id"};
        for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
                xsnprintf(path, sizeof(path), "%s/%s", f->rootfs, absent[i]);
                assert_int_equal(lstat(path, &st), -1);
        }
        xsnprintf(path, sizeof(path), "%s/etc/passwd", f->rootfs);
        assert_int_equal(read_full_file(path, buf, sizeof(buf), NULL), 0);
        assert_true(strncmp(buf, "root:x:0:0:", 11) == 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_uid, 0);
        assert_int_equal(st.st_mode & 022, 0);
        xsnprintf(path, sizeof(path), "%s/tmp", f->rootfs);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 01777);
        n = readlink("/bin", host_link, sizeof(host_link) - 1);
        if (n > 0) {
                host_link[n] = 0;
                xsnprintf(path, sizeof(path), "%s/bin", f->rootfs);
                n = readlink(path, image_link, sizeof(image_link) - 1);
                assert_true(n > 0);
                image_link[n] = 0;
                assert_string_equal(host_link, image_link);
        }
        xsnprintf(path, sizeof(path), "%s/images/host/image.json", f->state);
        assert_int_equal(read_full_file(path, buf, sizeof(buf), NULL), 0);
        assert_non_null(strstr(buf, "\"name\":\"host\""));
        assert_non_null(strstr(buf, "\"sh\":\"sh\""));
        /* idempotent */
        assert_int_equal(image_host_prepare(f->state, &err), 0);
        assert_int_equal(image_host_prepare(f->state, &err), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_available, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_image_host, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_lifecycle, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_suspend_resume, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_destroy_half_created, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_setup_failure, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_reap_unknown, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_hardening, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_disk_quota, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_disk_reap_unknown, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_disk_held_elsewhere, fixture_setup, fixture_teardown),
        };
        if (geteuid() != 0) {
                fprintf(stderr, "test_ns needs root; skipping\n");
                return 0;
        }
        return cmocka_run_group_tests(tests, NULL, NULL);
}
