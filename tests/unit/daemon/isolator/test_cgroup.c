/* The cgroup group's name, and the backends' knob writing against a fake cgroup
 * directory in a tmpdir. This
 * machine binds memory, cpu and pids to v1, so this is how the v2 spelling (memory.max,
 * memory.swap.max, memory.oom.group, cpu.max) is checked; the v1 one is also exercised
 * for real by test_ns. */
#include <fcntl.h>
#include <limits.h>
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
#include "daemon/isolator/cgroup.h"

typedef struct FakeCgroup {
        char dir[64];
} FakeCgroup;

/* cgroupfs knobs exist before anyone writes them; write_string_file never creates. A
 * knob takes each write as a whole new value; a regular file needs truncating first, so
 * tests call this again before writing a knob twice. */
static void knob_make(const FakeCgroup *c, const char *knob) {
        char path[PATH_MAX];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", c->dir, knob);
        fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);
}

static void knob_expect(const FakeCgroup *c, const char *knob, const char *value) {
        char path[PATH_MAX], buf[128];

        snprintf(path, sizeof(path), "%s/%s", c->dir, knob);
        assert_int_equal(read_full_file(path, buf, sizeof(buf), NULL), 0);
        buf[strcspn(buf, "\n")] = 0;
        assert_string_equal(buf, value);
}

static int setup(void **state) {
        FakeCgroup *c = calloc(1, sizeof(*c));

        assert_non_null(c);
        snprintf(c->dir, sizeof(c->dir), "/tmp/forge-test-cgroup-XXXXXX");
        assert_non_null(mkdtemp(c->dir));
        *state = c;
        return 0;
}

static int teardown(void **state) {
        FakeCgroup *c = *state;

        rm_rf_at(AT_FDCWD, c->dir);
        free(c);
        return 0;
}

static void test_v2_memory_group_oom(void **state) {
        FakeCgroup *c = *state;

        knob_make(c, "memory.max");
        knob_make(c, "memory.swap.max");
        knob_make(c, "memory.oom.group");
        assert_int_equal(cgroup_v2_limit_ops.memory(c->dir, 256), 0);
        knob_expect(c, "memory.max", "268435456");
        knob_expect(c, "memory.swap.max", "0");
        knob_expect(c, "memory.oom.group", "1");
        knob_make(c, "memory.max");
        assert_int_equal(cgroup_v2_limit_ops.memory(c->dir, 0), 0);
        knob_expect(c, "memory.max", "max");
        knob_expect(c, "memory.oom.group", "1");
}

/* Without swap accounting or on kernels before 4.19 the optional knobs are absent. */
static void test_v2_memory_optional_knobs(void **state) {
        FakeCgroup *c = *state;

        knob_make(c, "memory.max");
        assert_int_equal(cgroup_v2_limit_ops.memory(c->dir, 64), 0);
        knob_expect(c, "memory.max", "67108864");
        /* memory.max itself is required */
        unlink(strcat(strcpy((char[PATH_MAX]){0}, c->dir), "/memory.max"));
        assert_true(cgroup_v2_limit_ops.memory(c->dir, 64) < 0);
}

static void test_v2_cpu_and_kill(void **state) {
        FakeCgroup *c = *state;

        knob_make(c, "cpu.max");
        knob_make(c, "cgroup.kill");
        assert_int_equal(cgroup_v2_limit_ops.cpu(c->dir, 500), 0);
        knob_expect(c, "cpu.max", "50000 100000");
        knob_make(c, "cpu.max");
        assert_int_equal(cgroup_v2_limit_ops.cpu(c->dir, 1), 0);
        knob_expect(c, "cpu.max", "1000 100000"); /* the kernel's minimum quota */
        knob_make(c, "cpu.max");
        assert_int_equal(cgroup_v2_limit_ops.cpu(c->dir, 0), 0);
        knob_expect(c, "cpu.max", "max 100000");
        assert_int_equal(cgroup_v2_kill(c->dir), 0);
        knob_expect(c, "cgroup.kill", "1");
}

static void test_v1_memory_swap_off(void **state) {
        FakeCgroup *c = *state;

        knob_make(c, "memory.limit_in_bytes");
        knob_make(c, "memory.memsw.limit_in_bytes");
        assert_int_equal(cgroup_v1_limit_ops.memory(c->dir, 128), 0);
        knob_expect(c, "memory.limit_in_bytes", "134217728");
        knob_expect(c, "memory.memsw.limit_in_bytes", "134217728");
        knob_make(c, "cpu.cfs_period_us");
        knob_make(c, "cpu.cfs_quota_us");
        assert_int_equal(cgroup_v1_limit_ops.cpu(c->dir, 250), 0);
        knob_expect(c, "cpu.cfs_period_us", "100000");
        knob_expect(c, "cpu.cfs_quota_us", "25000");
}

/* One group per state dir, named the same by every forged and by the tests' leak probe
 * (tests/integration/test_faults.py cgroup_group). */
static void test_group_name(void **state) {
        char name[CGROUP_GROUP_NAME_MAX];

        cgroup_group_name("/var/lib/forge", name, sizeof(name));
        assert_string_equal(name, "forge-b742768b");
        cgroup_group_name("/var/lib/forge2", name, sizeof(name));
        assert_string_not_equal(name, "forge-b742768b");
        assert_int_equal(strlen(name), strlen("forge-") + 8);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_group_name),
                cmocka_unit_test_setup_teardown(test_v2_memory_group_oom, setup, teardown),
                cmocka_unit_test_setup_teardown(test_v2_memory_optional_knobs, setup, teardown),
                cmocka_unit_test_setup_teardown(test_v2_cpu_and_kill, setup, teardown),
                cmocka_unit_test_setup_teardown(test_v1_memory_swap_off, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
