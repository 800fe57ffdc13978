/* cgroup v1 backend: limits through the legacy knobs, freezing through freezer.state. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "daemon/isolator/cgroup.h"

#define CFS_PERIOD_US 100000

static bool has_knob(const char *dir, const char *knob) {
        char path[PATH_MAX];

        return path_join(path, sizeof(path), dir, knob) >= 0 && access(path, F_OK) >= 0;
}

static int apply_memory(const char *dir, int64_t memory_mb) {
        char value[32];
        bool memsw = has_knob(dir, "memory.memsw.limit_in_bytes");
        int r;

        /* memsw must never be below the memory limit, so lift it first and set it last. */
        if (memsw && (r = cgroup_write_knob(dir, "memory.memsw.limit_in_bytes", "-1")) < 0)
                return r;
        if (memory_mb <= 0)
                return cgroup_write_knob(dir, "memory.limit_in_bytes", "-1");
        snprintf(value, sizeof(value), "%" PRId64, memory_mb * 1024 * 1024);
        r = cgroup_write_knob(dir, "memory.limit_in_bytes", value);
        if (r < 0)
                return r;
        /* Swap off: memory+swap capped at the memory limit. */
        return memsw ? cgroup_write_knob(dir, "memory.memsw.limit_in_bytes", value) : 0;
}

static int apply_cpu(const char *dir, int64_t cpus_milli) {
        char value[32];
        int r;

        r = cgroup_write_knob(dir, "cpu.cfs_period_us", "100000");
        if (r < 0)
                return r;
        if (cpus_milli <= 0)
                return cgroup_write_knob(dir, "cpu.cfs_quota_us", "-1");
        snprintf(value, sizeof(value), "%" PRId64, MAX(cpus_milli * CFS_PERIOD_US / 1000, 1000));
        return cgroup_write_knob(dir, "cpu.cfs_quota_us", value);
}

const CgroupLimitOps cgroup_v1_limit_ops = {
        .memory = apply_memory,
        .cpu = apply_cpu,
};

/* Writes the state and waits (briefly) until the kernel reports it reached. */
int cgroup_v1_freeze(const char *dir, bool frozen) {
        const char *want = frozen ? "FROZEN" : "THAWED";
        char path[PATH_MAX], state[32];
        int r;

        r = path_join(path, sizeof(path), dir, "freezer.state");
        if (r < 0)
                return r;
        r = write_string_file(path, want);
        if (r < 0)
                return r;
        for (int i = 0; i < 100; i++) {
                struct timespec ts = {.tv_nsec = 5 * 1000000L};
                r = read_full_file(path, state, sizeof(state), NULL);
                if (r < 0)
                        return r;
                if (strncmp(state, want, strlen(want)) == 0)
                        return 0;
                nanosleep(&ts, NULL);
        }
        return -ETIMEDOUT;
}
