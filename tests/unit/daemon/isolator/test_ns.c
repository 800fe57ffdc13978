/* The ns isolator against the real kernel: needs root. Everything is checked from the
 * host side through /proc and the cgroup filesystems, so the test does not depend on the
 * agent protocol; FORGE_AGENT_BIN names the binary booted as the sandbox's init. */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic/fs-util.h"
#include "basic/rm-rf.h"
#include "daemon/core/image-host.h"
#include "daemon/isolator/isolator.h"
#include "daemon/isolator/ns/cgroup.h"

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

static bool known_except(const char *id, void *userdata) {
        /* Only ever reap our own sandbox: other daemons may share this machine. */
        return strcmp(id, userdata) != 0;
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
                cmocka_unit_test_setup_teardown(test_destroy_half_created, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_reap_unknown, fixture_setup, fixture_teardown),
        };
        if (geteuid() != 0) {
                fprintf(stderr, "test_ns needs root; skipping\n");
                return 0;
        }
        return cmocka_run_group_tests(tests, NULL, NULL);
}
