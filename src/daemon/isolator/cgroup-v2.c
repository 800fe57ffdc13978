/* cgroup v2 backend: controller delegation, limits and cgroup.kill. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basic/fs-util.h"
#include "daemon/isolator/cgroup.h"

#define CPU_PERIOD_US 100000

static const struct {
        CgroupController controller;
        const char *name;
} v2_controllers[] = {
        {CGROUP_MEMORY, "memory"},
        {CGROUP_CPU, "cpu"},
        {CGROUP_PIDS, "pids"},
};

static bool word_in(const char *text, const char *word) {
        size_t n = strlen(word);

        for (const char *p = strstr(text, word); p; p = strstr(p + 1, word))
                if ((p == text || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ' || p[n] == '\n'))
                        return true;
        return false;
}

static int enable_controller(const char *dir, const char *name) {
        char path[PATH_MAX], value[32];

        if (path_join(path, sizeof(path), dir, "cgroup.subtree_control") < 0)
                return -ENAMETOOLONG;
        snprintf(value, sizeof(value), "+%s", name);
        return write_string_file(path, value);
}

/* Sandboxes live in <own>/<group>/<id> (see cgroup_set_group). The no-internal-processes rule lets a cgroup either
 * hold processes or hand controllers to children, so controllers are enabled in <own>
 * (works when <own> is the root or forged was given a delegated, empty parent) and in
 * <group>/, which never holds a process. A controller that cannot be enabled is left to
 * v1 (or to nothing). */
int cgroup_v2_prepare(const char *own, CgroupHierarchy *h) {
        char path[PATH_MAX], available[1024];
        int r;

        r = path_join(path, sizeof(path), own, "cgroup.controllers");
        if (r < 0)
                return r;
        r = read_full_file(path, available, sizeof(available), NULL);
        if (r < 0)
                return r;
        if (snprintf(h->base, sizeof(h->base), "%s/%s", own, cgroup_group()) >= (int) sizeof(h->base))
                return -ENAMETOOLONG;
        if (mkdir(h->base, 0755) < 0 && errno != EEXIST)
                return -errno;
        h->v2 = true;
        h->controllers = 0;
        for (size_t i = 0; i < ELEMENTSOF(v2_controllers); i++) {
                if (!word_in(available, v2_controllers[i].name))
                        continue;
                if (enable_controller(own, v2_controllers[i].name) < 0 ||
                    enable_controller(h->base, v2_controllers[i].name) < 0)
                        continue;
                h->controllers |= 1u << v2_controllers[i].controller;
        }
        return 0;
}

static int apply_memory(const char *dir, int64_t memory_mb) {
        char value[32] = "max";
        int r;

        if (memory_mb > 0)
                snprintf(value, sizeof(value), "%" PRId64, memory_mb * 1024 * 1024);
        r = cgroup_write_knob(dir, "memory.max", value);
        if (r < 0)
                return r;
        /* Swap off; the knob is absent without swap accounting. */
        r = cgroup_write_knob(dir, "memory.swap.max", "0");
        if (r < 0 && r != -ENOENT)
                return r;
        /* An OOM kill takes the whole sandbox, never half of it. */
        r = cgroup_write_knob(dir, "memory.oom.group", "1");
        return r == -ENOENT ? 0 : r;
}

static int apply_cpu(const char *dir, int64_t cpus_milli) {
        char value[64];

        if (cpus_milli <= 0)
                snprintf(value, sizeof(value), "max %d", CPU_PERIOD_US);
        else
                snprintf(value, sizeof(value), "%" PRId64 " %d",
                         MAX(cpus_milli * CPU_PERIOD_US / 1000, 1000), CPU_PERIOD_US);
        return cgroup_write_knob(dir, "cpu.max", value);
}

const CgroupLimitOps cgroup_v2_limit_ops = {
        .memory = apply_memory,
        .cpu = apply_cpu,
};

/* cgroup.kill (Linux 5.14) SIGKILLs the whole subtree atomically, racing no fork. */
int cgroup_v2_kill(const char *dir) {
        return cgroup_write_knob(dir, "cgroup.kill", "1");
}

/* Freezing is asynchronous in v2: the write starts it, cgroup.events reports it done. */
int cgroup_v2_freeze(const char *dir, bool frozen) {
        const char *want = frozen ? "frozen 1" : "frozen 0";
        char path[PATH_MAX], events[512];
        int r;

        r = cgroup_write_knob(dir, "cgroup.freeze", frozen ? "1" : "0");
        if (r < 0)
                return r;
        r = path_join(path, sizeof(path), dir, "cgroup.events");
        if (r < 0)
                return r;
        for (int i = 0; i < 1000; i++) {
                r = read_full_file(path, events, sizeof(events), NULL);
                if (r < 0)
                        return r;
                if (strstr(events, want))
                        return 0;
                nanosleep(&(struct timespec){.tv_nsec = 5 * 1000000L}, NULL);
        }
        return -ETIMEDOUT;
}
