/* Sandbox cgroups, over cgroup v2, v1 or a hybrid of both; shared by the isolators (ns
 * puts the sandbox's processes there, qemu the VM's QEMU).
 *
 * Each sandbox gets <forged's own cgroup>/<group>/<id> in every hierarchy it uses. Per
 * controller the unified (v2) hierarchy wins when the controller is available there,
 * else the v1 hierarchy that carries it. Where a unified hierarchy is mounted at all, the
 * sandbox also gets a v2 cgroup even without controllers: it tracks membership and
 * offers cgroup.kill and cgroup.events. */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "daemon/isolator/isolator.h"

typedef enum CgroupController {
        CGROUP_MEMORY,
        CGROUP_CPU,
        CGROUP_CPUACCT,
        CGROUP_PIDS,
        CGROUP_FREEZER,
        _CGROUP_CONTROLLER_MAX,
} CgroupController;

#define CGROUP_HIERARCHY_MAX 8

typedef struct CgroupHierarchy {
        bool v2;
        unsigned controllers; /* bitmask of 1u << CgroupController served here */
        char base[PATH_MAX];  /* <mount><forged's path>/forge */
} CgroupHierarchy;

typedef struct CgroupLayout {
        CgroupHierarchy hierarchies[CGROUP_HIERARCHY_MAX];
        size_t n_hierarchies;
        int v2_index; /* index of the unified hierarchy, or -1 */
} CgroupLayout;

/* Where forged's own cgroups are: directories, empty when absent. */
typedef struct CgroupMounts {
        char unified[PATH_MAX];
        char v1[_CGROUP_CONTROLLER_MAX][PATH_MAX];
} CgroupMounts;

/* Sandboxes live in <forged's cgroup>/<group>/<id>; the group names one forged instance
 * (its state dir), so daemons sharing a cgroup never reap each other's sandboxes. Set it
 * before the first cgroup call (isolator_init_all does, whichever isolators it inits). */
#define CGROUP_GROUP_NAME_MAX 32
/* "forge-<FNV-1a of state_dir>", state_dir an absolute, resolved path. */
void cgroup_group_name(const char *state_dir, char *ret, size_t size);
void cgroup_set_group(const char *name);
const char *cgroup_group(void);
/* Discovered once per process (forged's cgroup does not move). */
int cgroup_layout_get(const CgroupLayout **ret);
/* Parses /proc/self/cgroup and /proc/self/mountinfo text; exposed for tests. */
int cgroup_mounts_parse(const char *proc_cgroup, const char *mountinfo, CgroupMounts *ret);

/* The hierarchy that serves a controller, or NULL. */
const CgroupHierarchy *cgroup_layout_find(const CgroupLayout *l, CgroupController c);
int cgroup_path(const CgroupHierarchy *h, const char *id, const char *file, char *buf, size_t size);

/* Creates the sandbox's cgroups and applies limits; idempotent. */
int cgroup_create(const char *id, const SandboxLimits *limits);
int cgroup_attach(const char *id, pid_t pid);
/* Kills every process in the sandbox's cgroups and waits until they are empty. */
int cgroup_kill_all(const char *id);
/* rmdir of this instance's group in every hierarchy, where it is empty; nothing if no
 * cgroup was used yet. */
void cgroup_remove_group(void);
/* rmdir of every cgroup of the sandbox; missing ones are fine. */
int cgroup_remove(const char *id);
int cgroup_get_usage(const char *id, SandboxUsage *ret);
/* Freezes or thaws every process of the sandbox and waits until the kernel reports the
 * state reached; idempotent. -ENOTSUP without a freezer (v1) or cgroup.freeze (v2). */
int cgroup_freeze(const char *id, bool frozen);
/* Calls cb once for every sandbox id that has a cgroup in any hierarchy. */
int cgroup_foreach_sandbox(int (*cb)(const char *id, void *userdata), void *userdata);
/* Kills the processes of, and removes, every sandbox cgroup of this instance whose id
 * known() rejects, whichever isolator made it (reconcile's reap_unknown). */
int cgroup_reap_unknown(bool (*known)(const char *id, void *userdata), void *userdata);
bool cgroup_id_is_valid(const char *id);

/* Writes value into dir/knob. */
int cgroup_write_knob(const char *dir, const char *knob, const char *value);

/* Backends (cgroup-v1.c, cgroup-v2.c): how each spells the memory and cpu limits (pids.max
 * is the same in both). dir is the sandbox's cgroup directory; 0 means no limit. */
typedef struct CgroupLimitOps {
        int (*memory)(const char *dir, int64_t memory_mb);
        int (*cpu)(const char *dir, int64_t cpus_milli);
} CgroupLimitOps;
extern const CgroupLimitOps cgroup_v1_limit_ops, cgroup_v2_limit_ops;
int cgroup_v2_prepare(const char *own, CgroupHierarchy *h);
int cgroup_v1_freeze(const char *dir, bool frozen);
int cgroup_v2_kill(const char *dir);
/* cgroup.freeze, waiting for cgroup.events to say frozen 1 (or 0). */
int cgroup_v2_freeze(const char *dir, bool frozen);
/* 1 if processes remain in dir, 0 if none, -errno. */
int cgroup_is_populated(const CgroupHierarchy *h, const char *dir);
int cgroup_signal_procs(const char *dir, int sig);
